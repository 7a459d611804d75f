#!/usr/bin/env python3
"""Summarise a linattn-bench --benchmark_out JSON file into the ratios the project tracks.

    linattn-bench --benchmark_out=run.json
    python3 bench/summarize.py run.json

Prints, from one run:
  * each GLA prefill (form, K, T, threads): its GFLOPS over the Eigen fp32 GEMM's GFLOPS
    (BM_EigenGemm, single-threaded), and the 2-thread / 1-thread speedup per (form, K, T);
  * each GLA decode step: its time over the time of one read+write pass over a buffer of the
    same state size (BM_StateReadWrite), i.e. how far the step is from the memory bound;
  * each ternary linear layer (shape, tokens, threads): the 2-bit time against Eigen fp32, the
    1.6-bit / 2-bit time ratio, and the 2-bit weight-streaming GB/s over the streaming-read GB/s
    (BM_MemoryBandwidth) at the same thread count, and its multiply-adds a second over the
    vpdpbusd peak (BM_Int8DotPeak); and the packed weight bytes per shape.
Where repetitions were run, the median is used (the "median" aggregate, or the median of the
repetitions); otherwise the single value. Standard library only.
"""
import argparse
import json
import statistics
import sys

NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse_name(run_name):
    """'BM_X/K:64/T:512/threads:1/min_time:0.200/real_time' -> ('BM_X', {'K': 64, ...})."""
    parts = run_name.split("/")
    args = {}
    for p in parts[1:]:
        if ":" in p:
            key, _, val = p.partition(":")
            try:
                args[key] = int(val)
            except ValueError:
                args[key] = val
    return parts[0], args


def load(path):
    """{run_name: {'family', 'args', 'time_ns', counters...}}, medians where repeated."""
    with open(path) as f:
        data = json.load(f)
    medians, iterations = {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            iterations.setdefault(name, []).append(b)
    runs = {}
    for name in set(medians) | set(iterations):
        reps = [medians[name]] if name in medians else iterations[name]
        family, args = parse_name(name)
        entry = {"family": family, "args": args}
        numeric = set.intersection(*[{k for k, v in r.items() if isinstance(v, (int, float))} for r in reps])
        for key in numeric:
            entry[key] = statistics.median(float(r[key]) for r in reps)
        unit = NS_PER_UNIT[reps[0].get("time_unit", "ns")]
        entry["time_ns"] = entry["real_time"] * unit
        runs[name] = entry
    return data.get("context", {}), runs


def fmt(x, spec):
    return format(x, spec) if x is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="file written by linattn-bench --benchmark_out=FILE")
    a = ap.parse_args()
    context, runs = load(a.json)
    by_family = {}
    for r in runs.values():
        by_family.setdefault(r["family"], []).append(r)

    ctx = [f"host={context.get('host_name', '?')}", f"cpus={context.get('num_cpus', '?')}",
           f"linattn_max_threads={context.get('linattn_max_threads', '?')}",
           f"OMP_WAIT_POLICY={context.get('OMP_WAIT_POLICY', '?')}"]
    print("context: " + " ".join(ctx))

    gemm = by_family.get("BM_EigenGemm", [])
    gemm_gflops = gemm[0].get("GFLOPS") if gemm else None
    if gemm:
        print(f"roofline: Eigen fp32 GEMM n={gemm[0]['args'].get('n')} 1 thread: {gemm_gflops:.1f} GFLOPS")
    rw = {int(r["args"]["bytes"]): r for r in by_family.get("BM_StateReadWrite", [])}
    for nbytes, r in sorted(rw.items()):
        print(f"roofline: state read+write {nbytes // 1024} KiB: {r['time_ns'] / 1e3:.3f} us, {r.get('GB/s', 0):.1f} GB/s")

    for op in ("GLA", "GSA"):
        summarize_op(op, by_family, gemm_gflops, rw)
    gla_vs_gsa(by_family)
    ternary(by_family)



def summarize_op(op, by_family, gemm_gflops, rw):
    # Prefill: one row per (form, K, T).
    forms = [("recurrent", f"BM_{op}_Recurrent"), ("chunk", f"BM_{op}_Chunk"), ("fused", f"BM_{op}_FusedChunk")]
    table = {}
    for form, family in forms:
        for r in by_family.get(family, []):
            g = r["args"]
            table.setdefault((form, g["K"], g["T"]), {})[g["threads"]] = r
    if table:
        print()
        print(f"{op} prefill (B=1, H=4, K=V" + (", M=64" if op == "GSA" else "") + "): GFLOPS = " + ("4M(K+V)TH" if op == "GSA" else "4KVTH") + "/time; /GEMM = GFLOPS / Eigen GEMM GFLOPS;"
              " speedup = time(1 thread) / time(2 threads)")
        hdr = f"{'form':<10}{'K':>4}{'T':>6} | {'ms@1t':>8}{'GFLOPS@1t':>10}{'/GEMM@1t':>9} |" \
              f" {'ms@2t':>8}{'GFLOPS@2t':>10}{'/GEMM@2t':>9} | {'speedup':>7}"
        print(hdr)
        print("-" * len(hdr))
        order = {f: i for i, (f, _) in enumerate(forms)}
        for (form, K, T) in sorted(table, key=lambda x: (order[x[0]], x[1], x[2])):
            row = table[(form, K, T)]
            cells = []
            for t in (1, 2):
                r = row.get(t)
                ms = r["time_ns"] / 1e6 if r else None
                gf = r.get("GFLOPS") if r else None
                ratio = gf / gemm_gflops if (gf is not None and gemm_gflops) else None
                cells.append(f"{fmt(ms, '8.2f'):>8}{fmt(gf, '10.1f'):>10}{fmt(ratio, '9.2f'):>9}")
            speedup = row[1]["time_ns"] / row[2]["time_ns"] if (1 in row and 2 in row) else None
            print(f"{form:<10}{K:>4}{T:>6} | {cells[0]} | {cells[1]} | {fmt(speedup, '7.2f'):>7}")

    steps = by_family.get(f"BM_{op}_Step", [])
    if steps:
        print()
        print(f"{op} decode step (B=1, H=4): step/RW = step time / read+write pass over the same state bytes;"
              " speedup = time(1 thread) / time(2 threads)")
        hdr = f"{'K':>4}{'threads':>8}{'state KiB':>10} | {'step us':>9}{'RW us':>8}{'step/RW':>9}{'state GB/s':>11} | {'speedup':>7}"
        print(hdr)
        print("-" * len(hdr))
        one = {r["args"]["K"]: r for r in steps if r["args"]["threads"] == 1}
        for r in sorted(steps, key=lambda r: (r["args"]["K"], r["args"]["threads"])):
            K, t = r["args"]["K"], r["args"]["threads"]
            nbytes = int(r.get("state_bytes", 4 * 4 * K * K))
            ref = rw.get(nbytes)
            ratio = r["time_ns"] / ref["time_ns"] if ref else None
            speedup = one[K]["time_ns"] / r["time_ns"] if (t != 1 and K in one) else None
            print(f"{K:>4}{t:>8}{nbytes // 1024:>10} | {r['time_ns'] / 1e3:>9.2f}"
                  f"{fmt(ref['time_ns'] / 1e3 if ref else None, '8.3f'):>8}{fmt(ratio, '9.1f'):>9}"
                  f"{r.get('state_GB/s', 0):>11.2f} | {fmt(speedup, '7.2f'):>7}")


def gla_vs_gsa(by_family):
    """GSA chunk tokens/s over GLA chunk tokens/s at the same (K, T, threads): the cost of the second pass."""
    for form, suffix in (("chunk", "Chunk"), ("fused_chunk", "FusedChunk")):
        gla = {(r["args"]["K"], r["args"]["T"], r["args"]["threads"]): r for r in by_family.get(f"BM_GLA_{suffix}", [])}
        gsa = {(r["args"]["K"], r["args"]["T"], r["args"]["threads"]): r for r in by_family.get(f"BM_GSA_{suffix}", [])}
        common = sorted(set(gla) & set(gsa))
        if not common:
            continue
        print()
        print(f"GSA (M=64) {form} tokens/s / GLA {form} tokens/s at the same K=V, T, threads")
        for key in common:
            print(f"  K={key[0]:<4} T={key[1]:<5} threads={key[2]}:  {gsa[key]['tokens/s'] / gla[key]['tokens/s']:.2f}")


def ternary(by_family):
    """Ternary linear layers (bench_ternary.cpp): 2-bit vs Eigen fp32, 1.6-bit vs 2-bit, 2-bit GB/s vs memory."""
    def keyed(family):
        return {(r["args"]["out"], r["args"]["in"], r["args"].get("tokens", 1), r["args"].get("threads", 1)): r
                for r in by_family.get(family, [])}
    two, b3, fp32, int8 = keyed("BM_Ternary2"), keyed("BM_Ternary16"), keyed("BM_EigenLinear"), keyed("BM_Int8Gemv")
    if not two:
        return
    bw = {r["args"]["threads"]: r.get("GB/s") for r in by_family.get("BM_MemoryBandwidth", [])}
    print()
    for t, gbs in sorted(bw.items()):
        print(f"roofline: streaming read 256 MiB, {t} thread(s): {gbs:.1f} GB/s")
    peak = next((r.get("GMAC/s") for r in by_family.get("BM_Int8DotPeak", [])), None)
    if peak:
        print(f"roofline: vpdpbusd on registers, 1 thread: {peak:.1f} GMAC/s (int8 multiply-adds)")
    print()
    print("Ternary linear, cold weights (ternary time includes the int8 activation quantisation):"
          " x fp32 = Eigen fp32 time / 2-bit time; 1.6/2 = 1.6-bit time / 2-bit time;"
          " BW% = 2-bit weight GB/s / streaming-read GB/s at the same thread count;"
          " MAC% = 2-bit multiply-adds a second / (threads x the vpdpbusd peak)")
    hdr = (f"{'out':>6}{'in':>6}{'tok':>5}{'thr':>4} | {'2-bit us':>9}{'1.6b us':>9}{'fp32 us':>10}{'int8 us':>9} |"
           f" {'x fp32':>7}{'1.6/2':>7} | {'2b GB/s':>8}{'BW%':>6}{'MAC%':>6}")
    print(hdr)
    print("-" * len(hdr))
    for key in sorted(two, key=lambda k: (k[2], k[3], k[0] * k[1], k[0])):
        out, inn, tok, thr = key
        r2, r3, rf = two[key], b3.get(key), fp32.get(key)
        ri = int8.get((out, inn, 1, 1)) if (tok == 1 and thr == 1) else None
        us = lambda r: r["time_ns"] / 1e3 if r else None
        speed = rf["time_ns"] / r2["time_ns"] if rf else None
        ratio = r3["time_ns"] / r2["time_ns"] if r3 else None
        frac = 100.0 * r2.get("GB/s", 0) / bw[thr] if bw.get(thr) else None
        mac = 100.0 * r2["GMAC/s"] / (thr * peak) if peak and "GMAC/s" in r2 else None
        print(f"{out:>6}{inn:>6}{tok:>5}{thr:>4} | {fmt(us(r2), '9.1f'):>9}{fmt(us(r3), '9.1f'):>9}{fmt(us(rf), '10.1f'):>10}"
              f"{fmt(us(ri), '9.1f'):>9} | {fmt(speed, '7.2f'):>7}{fmt(ratio, '7.2f'):>7} |"
              f" {r2.get('GB/s', 0):>8.1f}{fmt(frac, '6.0f'):>6}{fmt(mac, '6.0f'):>6}")
    print()
    print("Weight memory per shape (one copy, packed buffer): fp32 / packed")
    shapes = sorted({(k[0], k[1]) for k in two}, key=lambda s: s[0] * s[1])
    for out, inn in shapes:
        pick = lambda d: next((r for k, r in d.items() if (k[0], k[1]) == (out, inn)), None)
        r2, r3 = pick(two), pick(b3)
        fp = 4.0 * out * inn
        line = f"  {out:>6} x {inn:<6} fp32 {fp / 2**20:8.2f} MiB | 2-bit {r2['weight_bytes'] / 2**20:7.3f} MiB (1/{fp / r2['weight_bytes']:.2f})"
        if r3:
            line += f" | 1.6-bit {r3['weight_bytes'] / 2**20:7.3f} MiB (1/{fp / r3['weight_bytes']:.2f})"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
