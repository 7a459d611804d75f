"""Train a GLA, GSA or HGRNBit model on MQAR with linattn's ops, one process or data-parallel.

    /usr/bin/python3 -m linattn_train.train --family gsa --d-model 64 --seq-len 128 --pairs 8 \\
        --steps 400 --lr 3e-3 --out runs/gsa-64
    torchrun --nproc_per_node 2 -m linattn_train.train ...     # DistributedDataParallel over gloo

AdamW (weight decay 0.1) with a linear warm-up over the first 10 % of the steps, then a cosine
decay to zero. Each step draws a fresh global batch of MQAR examples from (seed, step); with N
processes each takes its 1/N slice, so N processes and one compute the same loss and gradients
(DDP averages the gradients; every example carries exactly P labels, so the per-process means
average to the global mean). Progress (step, loss, accuracy, tokens/s) goes to stderr; the
checkpoint folder (config.json + model.safetensors, loadable by linattn-generate, and
train_state.pt for --resume) is written every --save-every steps and at the end.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import linattn

from .modeling import CausalLM, make_config
from .mqar import IGNORE, multiquery_ar

FAMILIES = ("gla", "gsa", "hgrn_bit")
TEST_SEED = 1_000_003  # held-out examples come from a seed no training step uses


def mqar_model_config(family, d_model, vocab_size, layers=2, mlp_ratio=2, short_conv=True):
    """The experiment's models: 2 layers, 2 heads for GLA and GSA with GSA's slots chosen so both
    carry the same recurrent state (GLA: H (D/H)^2 = D^2 / 2 floats a layer; GSA: H M (K + V) =
    2 M D, so M = D / 4); HGRNBit's state is its width D (it cannot be matched). Upstream's blocks
    keep their gated MLP (the checkpoints need it), here with intermediate_size = mlp_ratio * D.
    GLA and GSA get fla's short convolution (width 4) as zoology's recall models do; HGRNBit's is
    broken upstream (SPEC 8.14), so it has none."""
    common = dict(hidden_size=d_model, num_hidden_layers=layers, vocab_size=vocab_size,
                  intermediate_size=mlp_ratio * d_model)
    if family == "gla":
        return make_config("gla", num_heads=2, expand_k=1, expand_v=1, use_short_conv=short_conv, **common)
    if family == "gsa":
        return make_config("gsa", num_heads=2, num_slots=max(1, d_model // 4), use_short_conv=short_conv, **common)
    if family == "hgrn_bit":
        return make_config("hgrn_bit", **common)
    raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")


def lr_at(step, steps, lr, warmup=0.1):
    w = max(1, int(warmup * steps))
    if step < w:
        return lr * (step + 1) / w
    return lr * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, steps - w)))


def batch_of(args, step, rank=0, world=1):
    """This process's slice of the global batch of `step` (inputs, labels) [b, L]."""
    x, y = multiquery_ar(args.batch, args.vocab, args.seq_len, args.pairs, seed=(args.seed, step))
    per = args.batch // world
    return torch.from_numpy(x[rank * per:(rank + 1) * per]), torch.from_numpy(y[rank * per:(rank + 1) * per])


def loss_and_accuracy(model, x, y):
    logits = model(x)  # [b, L, vocab]
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
    mask = y != IGNORE
    acc = (logits.argmax(-1)[mask] == y[mask]).float().mean()
    return loss, acc


@torch.no_grad()
def evaluate(model, args, examples=256):
    """Accuracy on held-out examples (fraction of query positions whose value is the argmax)."""
    x, y = multiquery_ar(examples, args.vocab, args.seq_len, args.pairs, seed=TEST_SEED + args.seed)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    hits = total = 0
    for i in range(0, examples, 64):
        pred = model(x[i:i + 64]).argmax(-1)
        m = y[i:i + 64] != IGNORE
        hits += int((pred[m] == y[i:i + 64][m]).sum())
        total += int(m.sum())
    return hits / total


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=FAMILIES, required=True)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--short-conv", type=int, choices=(0, 1), default=1, help="GLA, GSA: fla's short convolution")
    ap.add_argument("--vocab", type=int, default=256, help="MQAR vocabulary (keys [1, V/2), values [V/2, V))")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=64, help="global batch (split over the processes)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="linattn's and torch's threads per process")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=0, help="0: only at the end")
    ap.add_argument("--out", help="checkpoint folder (written at --save-every and at the end)")
    ap.add_argument("--resume", action="store_true", help="continue from --out's train_state.pt")
    ap.add_argument("--stop-at", type=int, help="end this run after that step (a time-boxed job: the checkpoint "
                    "is written, --resume continues the same schedule)")
    ap.add_argument("--losses", help="write the loss of every step here (JSON), for comparisons")
    return ap.parse_args(argv)


def save(model, opt, step, args, history):
    raw = model.module if hasattr(model, "module") else model
    raw.save_pretrained(args.out)
    torch.save({"optimizer": opt.state_dict(), "step": step, "args": vars(args), "history": history},
               os.path.join(args.out, "train_state.pt"))


def run(args):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.batch % world:
        raise ValueError(f"--batch {args.batch} does not split over {world} processes")
    torch.set_num_threads(args.threads)
    linattn.set_num_threads(args.threads)
    if world > 1:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(args.seed)  # the same initial weights in every process
    start, history = 0, []
    if args.resume:
        if not args.out or not os.path.exists(os.path.join(args.out, "train_state.pt")):
            raise ValueError(f"--resume: no train_state.pt in {args.out}")
        model = CausalLM.from_pretrained(args.out)
        state = torch.load(os.path.join(args.out, "train_state.pt"))
        start, history = state["step"], state["history"]
    else:
        model = CausalLM(mqar_model_config(args.family, args.d_model, args.vocab, args.layers,
                                            short_conv=bool(args.short_conv)))
    raw = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(raw.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    if args.resume:
        opt.load_state_dict(state["optimizer"])
    tokens = 0
    t0 = time.perf_counter()
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    for step in range(start, end):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        x, y = batch_of(args, step, rank, world)
        loss, acc = loss_and_accuracy(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats = torch.stack([loss.detach(), acc.detach()])
        if world > 1:
            torch.distributed.all_reduce(stats)
            stats /= world
        history.append({"step": step, "loss": float(stats[0]), "acc": float(stats[1])})
        tokens += x.numel() * world
        if rank == 0 and ((step + 1) % args.log_every == 0 or step + 1 == end):
            dt = time.perf_counter() - t0
            print(f"step {step + 1}/{args.steps}  loss {stats[0]:.4f}  acc {stats[1]:.3f}  "
                      f"{tokens / dt:.0f} tokens/s", file=sys.stderr, flush=True)
        if args.out and args.save_every and (step + 1) % args.save_every == 0 and rank == 0:
            save(model, opt, step + 1, args, history)
    seconds = time.perf_counter() - t0
    result = {"family": args.family, "d_model": args.d_model, "seq_len": args.seq_len, "pairs": args.pairs,
              "lr": args.lr, "steps": args.steps, "state_bytes": raw.state_bytes(),
              "parameters": sum(p.numel() for p in raw.parameters()),
              "final_loss": history[-1]["loss"] if history else None,
              "tokens_per_s": tokens / seconds if seconds > 0 else None}
    if rank == 0:
        result["accuracy"] = evaluate(raw, args)
        if args.out:
            save(model, opt, end, args, history)
        if args.losses:
            with open(args.losses, "w") as f:
                json.dump([h["loss"] for h in history], f)
    if world > 1:
        torch.distributed.destroy_process_group()
    return result


def main(argv=None):
    result = run(parse(argv))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
