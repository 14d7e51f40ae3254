#!/usr/bin/env python3
"""Exports the benchmark models (bench/export_models.py) with a recent PyTorch, as on the GPU
machines: forces the TorchScript-based exporter (dynamo=False) so the graphs match the ones
exported with Debian's torch 1.13 (LayerNormalization, exact GELU as Erf). Skips models whose
.onnx already exists.

    python3 scripts/gpu_export_models.py [--out bench/models] [--only resnet50,bert_base]
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
import export_models as em  # noqa: E402

_orig_export = torch.onnx.export


def _export(*args, **kwargs):
    try:
        return _orig_export(*args, dynamo=False, **kwargs)
    except TypeError:  # torch without the dynamo flag
        return _orig_export(*args, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "bench", "models"))
    ap.add_argument("--only", default="resnet50,bert_base")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.onnx.export = _export
    for name in args.only.split(","):
        if os.path.exists(os.path.join(args.out, name + ".onnx")):
            print(f"{name}: exists")
            continue
        em.export(name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
