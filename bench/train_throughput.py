#!/usr/bin/python3
"""Training throughput of the MQAR GLA model, linattn's core against the same model with its
attention written in PyTorch ops (#15's target: >= 5x at 1 and 2 threads), one run:

* the model: examples/train's 2-layer GLA LM, d_model 128 (2 heads, K = V = 64, short conv,
  gated MLP), MQAR batches at L = 256, P = 16, AdamW steps (forward, backward, update);
* "linattn": the layers' recurrence is linattn.ops.chunk_gla (forward and backward in C++);
* "PyTorch": the same layers with the recurrence replaced by bench/anchors.py's chunked GLA
  (chunks of 64, the GLA paper's cumulative-gate form) under torch autograd; everything else
  (projections, norms, MLP, loss, optimizer) is the same PyTorch code in both.

At t threads each side is its best over torch's and OpenBLAS's thread counts from 1 to t (see
anchors.best_time: both pools at 2 oversubscribe 2 vCPUs); linattn runs t threads. Rounds
alternate the two sides; medians over the rounds.

    PYTHONPATH=build/release/examples/python:examples/train /usr/bin/python3 bench/train_throughput.py
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import gla_chunk_torch, set_threads  # noqa: E402

import linattn  # noqa: E402
from linattn_train.modeling import CausalLM  # noqa: E402
from linattn_train.train import loss_and_accuracy, mqar_model_config  # noqa: E402
from linattn_train.mqar import multiquery_ar  # noqa: E402


def torch_core(q, k, v, gk):
    """[B, T, H, *] -> o [B, T, H, V]: the PyTorch chunked GLA over the B·H sequences."""
    B, T, H, K = q.shape
    flat = lambda x: x.permute(0, 2, 1, 3).reshape(B * H, T, x.shape[-1])  # [B·H, T, *]
    o = gla_chunk_torch(torch, flat(q), flat(k), flat(v), flat(gk), 64)
    return o.view(B, H, T, -1).permute(0, 2, 1, 3)


def make_model(core, seed=0):
    torch.manual_seed(seed)
    model = CausalLM(mqar_model_config("gla", 128, 256))
    if core == "torch":
        for layer in model.model.layers:
            layer.attn.core = torch_core
    return model


def step_seconds(model, opt, x, y, steps):
    """Median seconds of one training step over `steps` steps (after one warm-up step)."""
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = loss_and_accuracy(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def core_seconds(core, B, T, H, K, steps):
    """Median seconds of the recurrence alone, forward + backward, at the model's shapes."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, T, H, K, generator=gen) for _ in range(3))
    gk = torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, generator=gen)) / 16
    do = torch.randn(B, T, H, K, generator=gen)
    times = []
    for i in range(steps + 1):
        leaves = [x.clone().requires_grad_() for x in (q, k, v, gk)]
        t0 = time.perf_counter()
        core(*leaves).backward(do)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    x, y = (torch.from_numpy(a) for a in multiquery_ar(args.batch, 256, args.seq_len, args.pairs, seed=0))

    # Both cores compute the same model: equal losses and gradients from the same weights.
    a, b = make_model("linattn"), make_model("torch")
    la, _ = loss_and_accuracy(a, x, y)
    lb, _ = loss_and_accuracy(b, x, y)
    la.backward()
    lb.backward()
    gerr = max(((pa.grad - pb.grad).abs().max() / pb.grad.abs().max().clamp_min(1e-30)).item()
               for pa, pb in zip(a.parameters(), b.parameters()))
    if not (abs(la.item() - lb.item()) < 1e-4 * abs(lb.item()) and gerr < 1e-3):
        sys.exit(f"train_throughput.py: the two cores disagree (loss {la.item()} vs {lb.item()}, grad {gerr:.1e})")

    tokens = args.batch * args.seq_len
    results = {}
    for t in args.threads:
        linattn.set_num_threads(t)
        configs = [(i, bl) for i in range(1, t + 1) for bl in range(1, t + 1)]
        samples = {"linattn": {c: [] for c in configs}, "torch": {c: [] for c in configs}}
        models = {core: make_model(core) for core in samples}
        opts = {core: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1) for core, m in models.items()}
        for _ in range(args.rounds):
            for core in ("linattn", "torch"):
                for c in configs:
                    set_threads(torch, *c)
                    samples[core][c].append(step_seconds(models[core], opts[core], x, y, args.steps))
        for core in samples:
            best = min(configs, key=lambda c: statistics.median(samples[core][c]))
            results[(core, t)] = (statistics.median(samples[core][best]), best)
            set_threads(torch, *best)
            fn = torch_core if core == "torch" else (lambda q, k, v, gk: linattn.ops.chunk_gla(q, k, v, gk)[0])
            results[(core, t, "core")] = core_seconds(fn, args.batch, args.seq_len, 2, 64, 2 * args.steps)

    print(f"MQAR GLA LM training step: 2 layers, d_model 128, H = 2, K = V = 64, batch {args.batch} x L = "
          f"{args.seq_len} ({tokens} tokens), AdamW; torch {torch.__version__}; medians of {args.rounds} rounds "
          f"x {args.steps} steps; loss agreement {abs(la.item() - lb.item()):.1e}, grad {gerr:.1e}")
    print(f"{'threads':>7}  {'attention':<34}{'ms/step':>9}{'tokens/s':>11}{'ratio':>8}"
          f"{'core fwd+bwd ms':>17}{'ratio':>8}   torch, blas threads")
    for t in args.threads:
        base, cbase = results[("torch", t)][0], results[("torch", t, "core")]
        for core, name in (("linattn", "linattn.ops.chunk_gla"), ("torch", "PyTorch ops, chunked, autograd")):
            s, cfg = results[(core, t)]
            c = results[(core, t, "core")]
            print(f"{t:>7}  {name:<34}{s * 1e3:>9.1f}{tokens / s:>11.0f}{base / s:>7.2f}x"
                  f"{c * 1e3:>17.1f}{cbase / c:>7.2f}x   {cfg[0]}, {cfg[1]}")
    print("core: the two layers' recurrence alone (one call per layer: x2 per step), at [B, T, H, K] = "
          f"[{args.batch}, {args.seq_len}, 2, 64]")


if __name__ == "__main__":
    main()
