#!/usr/bin/python3
"""linattn from Python, one run, one thread, medians (#14's targets):

* the decode step's overhead: linattn.ops.gla_step (B=1, H=4, K=V=128) from Python against
  linattn-bench's BM_GLA_Step/K:128/threads:1, the same C++ call (target: <= 10 us more);
* chunk_gla forward + backward from torch, beside the same computation written in PyTorch ops
  under autograd: the chunked form of bench/anchors.py (target >= 10x) and the naive per-token
  loop (target >= 50x).

    PYTHONPATH=build/release/examples/python /usr/bin/python3 bench/python_ops.py \
        --bench build/release/bench/linattn-bench
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import gla_chunk_torch, gla_recurrent_torch, gla_inputs, set_threads  # noqa: E402

import linattn  # noqa: E402


def median_time(fn, repeats):
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def step_overhead(bench, repeats):
    """Seconds per decode step from C++ (linattn-bench's median) and from Python (numpy and torch
    inputs, state updated in place), B=1 H=4 K=V=128."""
    out = subprocess.run([bench, "--benchmark_filter=^BM_GLA_Step/K:128/threads:1/", "--benchmark_format=json"],
                         check=True, capture_output=True, text=True).stdout
    runs = json.loads(out)["benchmarks"]
    med = [b for b in runs if b.get("aggregate_name") == "median"] or runs
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[med[0]["time_unit"]]
    t_cpp = med[0]["real_time"] * unit
    rng = np.random.default_rng(0)
    H, K = 4, 128
    q, k, v = (rng.standard_normal((1, H, K), dtype=np.float32) for _ in range(3))
    g = (np.log(1 / (1 + np.exp(-rng.standard_normal((1, H, K))))) / 16).astype(np.float32)
    state = rng.standard_normal((1, H, K, K), dtype=np.float32)
    tq, tk, tv, tg, ts = (torch.from_numpy(x) for x in (q, k, v, g, state.copy()))

    def per_call(fn, n=2000):
        fn()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        return statistics.median(samples)

    t_np = per_call(lambda: linattn.ops.gla_step(q, k, v, g, state, threads=1))
    t_torch = per_call(lambda: linattn.ops.gla_step(tq, tk, tv, tg, ts, threads=1))
    return t_cpp, t_np, t_torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--K", type=int, default=128)
    ap.add_argument("--V", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--bench", help="linattn-bench, for the C++ side of the decode-step overhead")
    args = ap.parse_args()
    H, T, K, V = args.H, args.T, args.K, args.V
    set_threads(torch, 1, 1)
    linattn.set_num_threads(1)

    if args.bench:
        t_cpp, t_np, t_torch = step_overhead(args.bench, args.repeats)
        print("GLA decode step, B=1 H=4 K=V=128, 1 thread, float32: median us per call")
        print(f"  C++ gla::step (linattn-bench BM_GLA_Step)   {t_cpp * 1e6:8.2f}")
        print(f"  linattn.ops.gla_step, numpy arrays           {t_np * 1e6:8.2f}   overhead {(t_np - t_cpp) * 1e6:6.2f}")
        print(f"  linattn.ops.gla_step, torch tensors          {t_torch * 1e6:8.2f}   overhead {(t_torch - t_cpp) * 1e6:6.2f}")

    q, k, v, g = gla_inputs(torch, H, T, K, V)  # [H, T, *]
    do = torch.randn(H, T, V)

    def leaves(*xs):
        return [x.detach().clone().requires_grad_() for x in xs]

    # linattn takes fla's time-first [B, T, H, *]: transposed views of the same values, no copy.
    def run_linattn():
        ql, kl, vl, gl = leaves(q, k, v, g)
        o, _ = linattn.ops.chunk_gla(*(x.transpose(0, 1).unsqueeze(0) for x in (ql, kl, vl, gl)))
        o.backward(do.transpose(0, 1).unsqueeze(0))
        return o.squeeze(0).transpose(0, 1), ql.grad

    def run_torch_chunk():
        qt, kt, vt, gt = leaves(q, k, v, g)
        o = gla_chunk_torch(torch, qt, kt, vt, gt, 64)
        o.backward(do)
        return o, qt.grad

    def run_torch_loop():
        qt, kt, vt, gt = leaves(q, k, v, g)
        o = gla_recurrent_torch(torch, qt, kt, vt, gt)
        o.backward(do)
        return o, qt.grad

    # The three compute the same function and gradient.
    (o1, d1), (o2, d2) = run_linattn(), run_torch_chunk()
    err_o = ((o1 - o2).abs().max() / o2.abs().max()).item()
    err_d = ((d1 - d2).abs().max() / d2.abs().max()).item()
    if not (err_o < 1e-3 and err_d < 1e-3):
        sys.exit(f"python_ops.py: linattn and the PyTorch chunked GLA disagree (o {err_o:.2e}, dq {err_d:.2e})")

    t_lin = median_time(run_linattn, args.repeats)
    t_chunk = median_time(run_torch_chunk, args.repeats)
    t_loop = median_time(run_torch_loop, max(3, args.repeats // 2))
    flops = 2 * H * T * K * V * 4 * 3  # the recurrence's ~4 K·V products per token, forward + 2x backward
    print(f"GLA forward+backward, B=1 T={T} H={H} K={K} V={V}, 1 thread, float32 (torch {torch.__version__}); "
          f"rel. difference to the PyTorch chunked form: o {err_o:.1e}, dq {err_d:.1e}")
    print(f"{'implementation':<42}{'median ms':>10}{'vs linattn':>12}")
    for name, t in (("linattn.ops.chunk_gla (torch autograd)", t_lin),
                    ("PyTorch ops, chunked (C = 64), autograd", t_chunk),
                    ("PyTorch ops, per-token loop, autograd", t_loop)):
        print(f"{name:<42}{t * 1e3:>10.2f}{t / t_lin:>11.1f}x")
    print(f"linattn: {flops / t_lin / 1e9:.1f} GFLOP/s of recurrence-equivalent work "
          f"(4·K·V multiply-adds per token and head, x3 for forward + backward)")


if __name__ == "__main__":
    main()
