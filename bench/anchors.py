#!/usr/bin/env python3
"""linattn beside the PyTorch a user could pick instead, measured in one run.

    python3 bench/anchors.py --bench build/release/bench/linattn-bench [--rounds 3] [--threads 1 2]

Needs Debian's python3-torch (and python3-numpy, which it pulls in); the linattn side is
linattn-bench, run as a subprocess between the PyTorch measurements. Each round runs every
linattn benchmark of the table once and every PyTorch anchor once, so both sides see the same
state of a shared host; the table reports medians over the rounds:

  * ternary / int8 linear layers, out x in = 2048 x 5632 and 5632 x 2048, 1 and 128 tokens:
    linattn's 2-bit ternary kernel (BM_Ternary2) against PyTorch's dynamic int8 Linear
    (torch.ao.quantization.quantize_dynamic, per quantized engine: onednn, fbgemm, x86 as the
    build offers them) and PyTorch's fp32 Linear; at 1 token also torch.mv (fp32 GEMV);
  * GLA prefill, B = 1, H = 4, K = V = 128, T = 8192: linattn's three forms (BM_GLA_*) against a
    chunked GLA written in PyTorch (chunks of 64, the cumulative-gate form of the GLA paper;
    checked against a token-by-token recurrence before it is timed), as recurrent-equivalent
    GFLOP/s = 4·K·V·H·T / time (what linattn-bench reports).

"ratio" is the PyTorch time over the linattn time: above 1, linattn is faster. At t threads
each PyTorch figure is its best over torch and OpenBLAS thread counts from 1 to t (best_time). Standard library
plus torch; nothing is written but the table (and --json FILE, the raw medians).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

LINEAR_SHAPES = [(2048, 5632), (5632, 2048)]  # (out, in): the MatMul-free 1.3B's down and gate+up
LINEAR_TOKENS = [1, 128]
GLA = dict(H=4, K=128, V=128, T=8192, chunk=64)


def linattn_filter(threads):
    shapes = "|".join(f"out:{o}/in:{i}" for o, i in LINEAR_SHAPES)
    toks = "|".join(str(t) for t in LINEAR_TOKENS)
    thr = "|".join(str(t) for t in threads)
    return (f"^(BM_Ternary2|BM_EigenLinear)/({shapes})/tokens:({toks})/threads:({thr})/"
            f"|^BM_GLA_(Recurrent|Chunk|FusedChunk)/K:{GLA['K']}/T:{GLA['T']}/threads:({thr})/")


def run_linattn(bench, threads, min_time):
    cmd = [bench, f"--benchmark_filter={linattn_filter(threads)}", "--benchmark_format=json",
           f"--benchmark_min_time={min_time}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        # linattn-bench runs repetitions and reports their aggregates: take the median.
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name, args = parse_name(b.get("run_name", b["name"]))
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        if name in ("BM_Ternary2", "BM_EigenLinear"):
            key = (name, args["out"], args["in"], args["tokens"], args["threads"])
        else:
            key = (name, args["threads"])
        times[key] = b["real_time"] * unit
    return times


def parse_name(run_name):
    parts = run_name.split("/")
    args = {}
    for p in parts[1:]:
        k, sep, v = p.partition(":")
        if sep and v.isdigit():
            args[k] = int(v)
    return parts[0], args


def timeit(fn, min_time):
    """Median seconds per call over 5 batches of at least min_time / 5 each."""
    fn()  # warm-up (first-call allocation, oneDNN primitive creation)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time / 5 or n < 1:
        fn()
        n += 1
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


_openblas = None


def set_threads(torch, intra, blas):
    """`intra` threads for torch's own kernels (OpenMP, oneDNN), `blas` for OpenBLAS, which keeps
    a pthread pool of its own that torch.set_num_threads does not reach."""
    global _openblas
    torch.set_num_threads(intra)
    if _openblas is None:
        import ctypes
        try:
            _openblas = ctypes.CDLL(blas_library()).openblas_set_num_threads
        except (OSError, AttributeError):
            _openblas = False  # the reference BLAS: single-threaded anyway
    if _openblas:
        _openblas(blas)


def best_time(torch, fn, threads, min_time):
    """The fastest PyTorch configuration using at most `threads` cores: torch's and OpenBLAS's
    thread counts each from 1 to `threads`. Both pools at 2 on 2 vCPUs oversubscribe them
    (measured, the chunked GLA below: 5.2 GFLOP/s with 2 + 2 threads, 32 with 1 + 1), so taking
    the count a user would set for both would understate PyTorch."""
    return min(
        (set_threads(torch, intra, blas), timeit(fn, min_time))[1]
        for intra in range(1, threads + 1)
        for blas in range(1, threads + 1))


def torch_linear_anchors(torch, threads, min_time):
    nn = torch.nn
    quantize_dynamic = torch.ao.quantization.quantize_dynamic
    engines = [e for e in ("onednn", "fbgemm", "x86") if e in torch.backends.quantized.supported_engines]
    times = {}
    with torch.no_grad():
        for out, inp in LINEAR_SHAPES:
            dense = nn.Linear(inp, out, bias=False)
            for tokens in LINEAR_TOKENS:
                x = torch.randn(tokens, inp)
                for t in threads:
                    times[("fp32 Linear", out, inp, tokens, t)] = best_time(torch, lambda: dense(x), t, min_time)
                    if tokens == 1:
                        w, xv = dense.weight, x[0]
                        times[("torch.mv", out, inp, tokens, t)] = best_time(torch, lambda: torch.mv(w, xv), t, min_time)
                    for e in engines:
                        torch.backends.quantized.engine = e
                        q = quantize_dynamic(nn.Sequential(dense), {nn.Linear}, dtype=torch.qint8)
                        times[(f"int8 dynamic ({e})", out, inp, tokens, t)] = best_time(torch, lambda: q(x), t, min_time)
    return times


def gla_chunk_torch(torch, q, k, v, g, chunk):
    """o [H, T, V] of GLA (S_t = diag(e^{g_t}) S_{t-1} + k_t^T v_t, o_t = q_t S_t / sqrt(K)) from
    [H, T, K] / [H, T, V] inputs: per chunk the intra-chunk scores with the gates' cumulative sum
    inside the chunk, and the carried state."""
    H, T, K = q.shape
    V = v.shape[-1]
    scale = K ** -0.5
    S = torch.zeros(H, K, V)
    o = torch.empty(H, T, V)
    mask = torch.ones(chunk, chunk).tril()
    for c0 in range(0, T, chunk):
        c1 = min(T, c0 + chunk)
        L = c1 - c0
        G = g[:, c0:c1].cumsum(1)                      # [H, L, K]
        qg = q[:, c0:c1] * G.exp() * scale             # q_t ⊙ e^{G_t}
        kg = k[:, c0:c1] * (-G).exp()                  # k_j ⊙ e^{-G_j}
        A = (qg @ kg.transpose(1, 2)) * mask[:L, :L]   # [H, L, L]
        vc = v[:, c0:c1]
        o[:, c0:c1] = A @ vc + qg @ S
        last = G[:, -1:]                               # [H, 1, K]
        S = S * last.transpose(1, 2).exp() + (k[:, c0:c1] * (last - G).exp()).transpose(1, 2) @ vc
    return o


def gla_recurrent_torch(torch, q, k, v, g):
    H, T, K = q.shape
    S = torch.zeros(H, K, v.shape[-1])
    o = torch.empty(H, T, v.shape[-1])
    for t in range(T):
        S = S * g[:, t].exp().unsqueeze(-1) + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(1)
        o[:, t] = (q[:, t].unsqueeze(1) @ S).squeeze(1) * K ** -0.5
    return o


def gla_inputs(torch, H, T, K, V, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(H, T, K, generator=gen), torch.randn(H, T, K, generator=gen)
    v = torch.randn(H, T, V, generator=gen)
    g = torch.nn.functional.logsigmoid(torch.randn(H, T, K, generator=gen)) / 16  # fla's GLA gate
    return q, k, v, g


def torch_gla_anchors(torch, threads, min_time):
    # The anchor must compute GLA: against the recurrence on a short sequence first (float64).
    set_threads(torch, 1, 1)
    q, k, v, g = (x.double() for x in gla_inputs(torch, 2, 150, 16, 8, seed=1))
    torch.set_default_dtype(torch.float64)
    err = (gla_chunk_torch(torch, q, k, v, g, 64) - gla_recurrent_torch(torch, q, k, v, g)).abs().max().item()
    torch.set_default_dtype(torch.float32)
    if not err < 1e-9:
        sys.exit(f"anchors.py: the PyTorch chunked GLA differs from the recurrence by {err}")
    q, k, v, g = gla_inputs(torch, GLA["H"], GLA["T"], GLA["K"], GLA["V"])
    times = {}
    with torch.no_grad():
        for t in threads:
            times[("torch chunked GLA", t)] = best_time(
                torch, lambda: gla_chunk_torch(torch, q, k, v, g, GLA["chunk"]), t, min_time)
    return times


def blas_library():
    """The BLAS that Debian's torch (BLAS_INFO=generic) calls: whatever libblas.so.3 points to.
    The reference BLAS (libblas3, what --no-install-recommends leaves) is ~20x slower than
    OpenBLAS (libopenblas0-pthread), so the table says which one its fp32 anchors ran on."""
    import glob
    import os
    for path in glob.glob("/usr/lib/*/libblas.so.3"):
        return os.path.realpath(path)
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/release/bench/linattn-bench", help="the linattn-bench binary")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are over them)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    ap.add_argument("--json", help="also write the medians here")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("anchors.py needs PyTorch: Debian's python3-torch (run it with /usr/bin/python3)")

    rounds = []
    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}: linattn-bench ...", file=sys.stderr, flush=True)
        m = run_linattn(a.bench, a.threads, a.min_time)
        print(f"round {r + 1}/{a.rounds}: PyTorch {torch.__version__} ...", file=sys.stderr, flush=True)
        m.update(torch_linear_anchors(torch, a.threads, a.min_time))
        m.update(torch_gla_anchors(torch, a.threads, a.min_time))
        rounds.append(m)
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}

    print(f"# linattn beside PyTorch {torch.__version__} (quantized engines: "
          f"{', '.join(torch.backends.quantized.supported_engines)}; BLAS: {blas_library()}), "
          f"medians of {a.rounds} interleaved rounds")
    print("\n## Linear layers: time in µs; ratio = PyTorch time / linattn ternary 2-bit time")
    print(f"{'out x in':>11} {'tok':>4} {'thr':>3} {'linattn 2-bit':>14} {'linattn fp32':>13}  anchors")
    for out, inp in LINEAR_SHAPES:
        for tokens in LINEAR_TOKENS:
            for t in a.threads:
                ours = med.get(("BM_Ternary2", out, inp, tokens, t))
                eigen = med.get(("BM_EigenLinear", out, inp, tokens, t))
                if ours is None:
                    continue
                anchors = [(key[0], val) for key, val in med.items()
                           if len(key) == 5 and key[1:] == (out, inp, tokens, t) and not key[0].startswith("BM_")]
                cells = "  ".join(f"{name} {val * 1e6:.1f} ({val / ours:.2f}x)" for name, val in anchors)
                print(f"{out:>5} x {inp:<5} {tokens:>4} {t:>3} {ours * 1e6:>14.1f} {eigen * 1e6 if eigen else float('nan'):>13.1f}  {cells}")
    flops = 4.0 * GLA["K"] * GLA["V"] * GLA["H"] * GLA["T"]
    print(f"\n## GLA prefill B=1 H={GLA['H']} K=V={GLA['K']} T={GLA['T']}: recurrent-equivalent GFLOP/s; "
          "ratio = PyTorch time / linattn time")
    for t in a.threads:
        anchor = med[("torch chunked GLA", t)]
        cells = []
        for form in ("Recurrent", "FusedChunk", "Chunk"):
            ours = med.get((f"BM_GLA_{form}", t))
            if ours is not None:
                cells.append(f"{form} {flops / ours / 1e9:.1f} ({anchor / ours:.2f}x)")
        print(f"threads {t}: torch chunked GLA {flops / anchor / 1e9:.1f};  linattn " + ",  ".join(cells))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{"key": list(k), "seconds": v} for k, v in med.items()], f, indent=1)


if __name__ == "__main__":
    main()
