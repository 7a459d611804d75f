#!/usr/bin/env python3
"""Markdown tables from a bench/scaling.sh run.

usage: summarize_scaling.py OUT_DIR

Reads OUT_DIR/{kernels,models,models_decode,load}.json (those present). For every model and
thread count: decode tokens/s, speedup over 1 thread, efficiency (speedup / threads) and the
fraction of the bandwidth bound (weight bytes per token / the same run's streaming read at the
same thread count); prefill tokens/s with its speedup and the fraction of the GEMM bound
(2 · parameters FLOPs per token / the same run's projection GEMM). Under load: decode on every
core beside one busy process per core, as a fraction of the same model's idle 1-thread decode.
"""
import json
import os
import re
import sys


def load(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        out[re.sub(r"/real_time$", "", b["name"])] = b
    return out


def threads_of(name):
    m = re.search(r"/threads:(\d+)", name)
    return int(m.group(1)) if m else None


def bounds(bench):
    stream, gemm = {}, {}
    for k, v in bench.items():
        t = threads_of(k)
        if k.startswith("BM_StreamRead"):
            stream[t] = v["GB/s"]
        elif k.startswith("BM_ProjectionGemm"):
            gemm[t] = v["GFLOPS"]
    return stream, gemm


def per_model(bench, kind):
    rows = {}
    for k, v in bench.items():
        if not k.startswith(kind + "/"):
            continue
        model = k.split("/")[1]
        rows.setdefault(model, {})[threads_of(k)] = v
    return rows


def model_table(bench, title):
    stream, gemm = bounds(bench)
    print(f"\n### {title}\n")
    print("| model | threads | decode tok/s | speedup | efficiency | of bandwidth bound | prefill tok/s | speedup | of GEMM bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    dec, pre = per_model(bench, "BM_Decode"), per_model(bench, "BM_Prefill")
    for model in sorted(dec):
        d1 = dec[model].get(1, {}).get("tokens/s")
        p1 = pre.get(model, {}).get(1, {}).get("tokens/s")
        prev = None
        for t in sorted(dec[model]):
            d = dec[model][t]
            tps = d["tokens/s"]
            bound = stream.get(t, 0) * 1e3 / d["weight_MB"] if d.get("weight_MB") and stream.get(t) else None
            cells = [model, str(t), f"{tps:.1f}"]
            cells.append(f"{tps / d1:.2f}×" if d1 else "")
            cells.append(f"{tps / d1 / t:.2f}" if d1 else "")
            cells.append(f"{tps / bound:.2f}" if bound else "")
            p = pre.get(model, {}).get(t)
            if p:
                ptps = p["tokens/s"]
                cells.append(f"{ptps:.1f}")
                cells.append(f"{ptps / p1:.2f}×" if p1 else "")
                g = gemm.get(t)
                cells.append(f"{ptps * p['GFLOP_per_token'] / g:.2f}" if g else "")
            else:
                cells += ["", "", ""]
            drop = prev is not None and tps < 0.95 * prev
            if drop:
                cells[2] += " ↓"
            prev = tps
            print("| " + " | ".join(cells) + " |")
    print("\nbounds at each thread count: " + ", ".join(
        f"{t}: {stream[t]:.1f} GB/s, {gemm.get(t, 0):.0f} GFLOP/s" for t in sorted(stream)))


def kernel_table(bench):
    print("\n### Kernels (B=2, H=16, K=V=128, T=4096; GSA M=64; ternary and GEMM 128 tokens × 5632×2048)\n")
    rows = {}
    for k, v in bench.items():
        name = k.split("/")[1]
        rows.setdefault(name, {})[threads_of(k)] = v
    counts = sorted({t for r in rows.values() for t in r})
    print("| kernel | " + " | ".join(f"{t} thr" for t in counts) + " | speedup at max |")
    print("|---|" + "---|" * (len(counts) + 1))
    for name in sorted(rows):
        r = rows[name]
        unit = "GB/s" if "GB/s" in next(iter(r.values())) else "GOPS" if "GOPS" in next(iter(r.values())) else "GFLOPS"
        vals = [r[t][unit] if t in r else None for t in counts]
        cells = [f"{v:.1f}" if v else "" for v in vals]
        sp = f"{vals[-1] / vals[0]:.1f}×" if vals[0] and vals[-1] else ""
        print(f"| {name} ({unit}) | " + " | ".join(cells) + f" | {sp} |")


def load_table(idle, loaded):
    dec_idle, dec_load = per_model(idle, "BM_Decode"), per_model(loaded, "BM_Decode")
    print("\n### Decode under load (one busy process per core, default threads = every core)\n")
    print("| model | idle 1 thread tok/s | loaded, all cores tok/s | ratio |")
    print("|---|---|---|---|")
    for model in sorted(dec_load):
        t, v = next(iter(dec_load[model].items()))
        one = dec_idle.get(model, {}).get(1, {}).get("tokens/s")
        ratio = f"{v['tokens/s'] / one:.2f}" if one else ""
        print(f"| {model} | {one:.1f} | {v['tokens/s']:.1f} | {ratio} |" if one else f"| {model} | | {v['tokens/s']:.1f} | |")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    kernels, models = load(f"{d}/kernels.json"), load(f"{d}/models.json")
    decode, loaded = load(f"{d}/models_decode.json"), load(f"{d}/load.json")
    if kernels:
        kernel_table(kernels)
    if models:
        model_table(models, "Models (prefill and decode)")
    if decode:
        model_table(decode, "Large models (decode)")
    if loaded:
        load_table(models, loaded)


if __name__ == "__main__":
    main()
