#!/usr/bin/env python3
"""The public headers' two build promises, checked from the tree (run by ctest as `headers`).

1. Dependencies: no header outside io/, models/ (linattn::models, on io) and the umbrella
   linattn.hpp reaches io/ or <nlohmann/...> through its includes, so linattn::linattn needs
   Eigen and threads only.
2. Compile memory: each header given with --budget compiles alone (g++ -fsyntax-only, the
   project's -std) under its budget of peak resident memory, printed for every header checked.

  check_headers.py --include include --cxx g++ --flags="-I/usr/include/eigen3" \
                   --budget linattn/ops/gla.hpp=360 ...
"""
import argparse, pathlib, re, resource, shlex, subprocess, sys, tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def dependency_errors(root: pathlib.Path):
    headers = sorted(p.relative_to(root).as_posix() for p in root.glob("linattn/**/*.hpp"))
    direct = {h: INCLUDE.findall((root / h).read_text()) for h in headers}
    errors = []
    for h in headers:
        if h.startswith("linattn/io/") or h.startswith("linattn/models/") or h == "linattn/linattn.hpp":
            continue
        seen, path, todo = {h}, {h: [h]}, [h]
        while todo:
            cur = todo.pop()
            for inc in direct.get(cur, []):
                if inc.startswith("nlohmann/") or inc.startswith("linattn/io/"):
                    errors.append(f"{h} reaches {inc} via {' -> '.join(path[cur])}")
                elif inc in direct and inc not in seen:
                    seen.add(inc)
                    path[inc] = path[cur] + [inc]
                    todo.append(inc)
    return len(headers), errors


def peak_mb(cxx, flags, root, header):
    with tempfile.NamedTemporaryFile("w", suffix=".cpp") as tu:
        tu.write(f"#include <{header}>\n")
        tu.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        run = subprocess.run([cxx, "-std=c++20", "-fsyntax-only", f"-I{root}", *flags, tu.name],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{header} does not compile alone:\n{run.stderr[:2000]}")
        # ru_maxrss of children is the largest so far: a header smaller than an earlier one
        # reads as that one, so headers are checked in increasing budget order.
        return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--include", required=True)
    ap.add_argument("--cxx")
    ap.add_argument("--flags", default="")
    ap.add_argument("--budget", action="append", default=[], help="header=MB")
    a = ap.parse_args()
    root = pathlib.Path(a.include)
    n, errors = dependency_errors(root)
    for e in errors:
        print("DEPENDENCY", e)
    print(f"dependencies: {n} headers, {len(errors)} reaching io/ or nlohmann-json from outside io/")
    failed = bool(errors)
    budgets = sorted(((float(mb), h) for h, mb in (b.split("=") for b in a.budget)))
    for mb, h in budgets:
        got = peak_mb(a.cxx, shlex.split(a.flags), root, h)
        ok = got <= mb
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} {h}: {got:.0f} MB peak (budget {mb:.0f} MB)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
