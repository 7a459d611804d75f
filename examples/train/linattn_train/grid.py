"""The MQAR table: every (family, d_model, L, P, learning rate) of the grid trained by train.run,
each model's best learning rate reported, as a markdown table and a matplotlib PNG.

    /usr/bin/python3 -m linattn_train.grid --out runs/mqar --jobs 2

The default grid is the documented 2-core one (d_model 64, (L, P) in {(64, 4), (128, 8)}, a vocab
of 64, 600 steps); --d-model 64 128 --lengths 64:4 128:8 256:16 gives the issue's full grid.
"""
import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from .train import FAMILIES, parse, run


def one(argv):
    return run(parse(argv))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for results.json, table.md, mqar.png")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--d-model", type=int, nargs="+", default=[64])
    ap.add_argument("--lengths", nargs="+", default=["64:4", "128:8"], help="L:P pairs")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runs = []
    for fam in args.families:
        for d in args.d_model:
            for lp in args.lengths:
                L, P = (int(s) for s in lp.split(":"))
                for lr in args.lrs:
                    runs.append(["--family", fam, "--d-model", str(d), "--seq-len", str(L), "--pairs", str(P),
                                 "--vocab", str(args.vocab), "--steps", str(args.steps), "--lr", str(lr),
                                 "--threads", "1", "--log-every", str(args.steps)])
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, r in enumerate(pool.map(one, runs)):
            results.append(r)
            print(f"[{i + 1}/{len(runs)}] {r['family']} d={r['d_model']} L={r['seq_len']} lr={r['lr']:g}: "
                  f"accuracy {r['accuracy']:.3f}", file=sys.stderr, flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    best = {}
    for r in results:
        key = (r["family"], r["d_model"], r["seq_len"], r["pairs"])
        if key not in best or r["accuracy"] > best[key]["accuracy"]:
            best[key] = r
    lines = [f"| model | d_model | state bytes / seq | parameters | L | P | best lr | accuracy | tokens/s (1 thread) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (fam, d, L, P), r in sorted(best.items()):
        lines.append(f"| {fam} | {d} | {r['state_bytes']} | {r['parameters']} | {L} | {P} | {r['lr']:g} | "
                     f"{r['accuracy']:.3f} | {r['tokens_per_s']:.0f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dims = sorted({d for _, d, _, _ in best})
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 3.6), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for fam in args.families:
            pts = sorted((L, r["accuracy"]) for (f_, dd, L, _), r in best.items() if f_ == fam and dd == d)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        ax.set_title(f"MQAR, d_model {d}, vocab {args.vocab}, {args.steps} steps")
        ax.set_xlabel("sequence length L (P = L / 16 pairs)")
        ax.set_ylabel("held-out accuracy (best lr)")
        ax.set_ylim(0, 1.02)
        ax.set_xscale("log", base=2)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "mqar.png"), dpi=110)


if __name__ == "__main__":
    main()
