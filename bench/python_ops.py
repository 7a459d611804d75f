#!/usr/bin/python3
"""linattn.ops.chunk_gla forward + backward from torch, beside the same computation written in
PyTorch ops under autograd (the chunked form of bench/anchors.py, and the naive per-token loop),
in one run on one thread: medians and ratios (#14's targets: >= 10x and >= 50x).

    PYTHONPATH=build/release/examples/python /usr/bin/python3 bench/python_ops.py
"""
import argparse
import os
import statistics
import sys
import time

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--K", type=int, default=128)
    ap.add_argument("--V", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    H, T, K, V = args.H, args.T, args.K, args.V
    set_threads(torch, 1, 1)
    linattn.set_num_threads(1)

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
