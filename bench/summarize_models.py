#!/usr/bin/env python3
"""Ratios of the full-models issue from one run of bench/models.sh.

usage: summarize_models.py MODELS.json RSS.txt
"""
import json
import re
import sys


def medians(path):
    out = {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        out[b["run_name"] if "run_name" in b else b["name"]] = b
    return out


def main():
    bench = medians(sys.argv[1])
    rss = {}
    for line in open(sys.argv[2]):
        name, _, rest = line.partition(":")
        m = re.search(r"peak RSS ([0-9.]+) MiB", rest)
        if m:
            rss[name.strip()] = float(m.group(1))
    bw = next(v["GB/s"] for k, v in bench.items() if k.startswith("BM_StreamRead"))
    gemm = next(v["GFLOPS"] for k, v in bench.items() if k.startswith("BM_ProjectionGemm"))
    print(f"stream read (2 threads): {bw:.1f} GB/s   projection GEMM [2048x1024]x[1024x2816] (2 threads): {gemm:.1f} GFLOP/s")
    print(f"{'benchmark':48s} {'tokens/s':>10s} {'bound':>10s} {'ratio':>7s}")
    for k, v in sorted(bench.items()):
        if k.startswith("BM_Decode"):
            bound = bw * 1e3 / v["weight_MB"]
            print(f"{k:48s} {v['tokens/s']:10.1f} {bound:10.1f} {v['tokens/s'] / bound:7.2f}   (weights {v['weight_MB']:.1f} MB/token)")
        elif k.startswith("BM_Prefill"):
            bound = gemm / v["GFLOP_per_token"]
            print(f"{k:48s} {v['tokens/s']:10.1f} {bound:10.1f} {v['tokens/s'] / bound:7.2f}   ({v['GFLOP_per_token']:.2f} GFLOP/token)")
    dec = {k.split("/")[1]: v["tokens/s"] for k, v in bench.items() if k.startswith("BM_Decode")}
    if "mmfree-370m" in dec and "mmfree-370m:dense" in dec:
        print(f"MatMul-free 370M decode, integer / dense float: {dec['mmfree-370m'] / dec['mmfree-370m:dense']:.2f}x")
    fp32_model_mib = 374108160 * 4 / 2**20  # SPEC §7: 370M parameters in fp32
    for name, mib in rss.items():
        print(f"peak RSS {name:28s} {mib:8.1f} MiB = {mib / fp32_model_mib:.3f} of the fp32 model ({fp32_model_mib:.0f} MiB)")


if __name__ == "__main__":
    main()
