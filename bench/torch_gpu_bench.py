#!/usr/bin/env python3
"""PyTorch on the GPU, the CUDA backend's peer (scripts/gpu_suite.sh): the same modules as
bench/export_models.py (same seed), FP16, inputs already on the GPU, timed with CUDA events
(median of --iters after warm-up), eager and torch.compile (default mode). ResNet-50 is also
run channels_last. One TSV line per case on stdout:

    model  batch  variant  ms  items/s
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_models as em  # noqa: E402


def median_ms(fn, x, iters, warmup=10):
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        ts = []
        for _ in range(iters):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn(x)
            e.record()
            e.synchronize()
            ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="resnet50:1,resnet50:128,bert_base:128")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    for case in args.cases.split(","):
        name, batch = case.split(":")
        batch = int(batch)
        model, spec = em.build(name)
        model = model.cuda().half().eval()
        x = em.example_input(spec, batch).cuda()
        if x.is_floating_point():
            x = x.half()
        variants = [("eager", model, x)]
        if not args.no_compile:
            variants.append(("compile", torch.compile(model), x))
        if name != "bert_base":
            mcl = model.to(memory_format=torch.channels_last)
            xcl = x.to(memory_format=torch.channels_last)
            variants.append(("eager_cl", mcl, xcl))
            if not args.no_compile:
                variants.append(("compile_cl", torch.compile(mcl), xcl))
        for vname, fn, inp in variants:
            ms = median_ms(fn, inp, args.iters)
            print(f"{name}\t{batch}\t{vname}\t{ms:.3f}\t{batch * 1000.0 / ms:.0f}", flush=True)
            torch._dynamo.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
