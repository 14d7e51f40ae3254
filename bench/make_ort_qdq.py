#!/usr/bin/python3
"""Builds the Q/DQ INT8 model ONNX Runtime runs as kiln's INT8 peer (issue 5).

    python3 bench/make_ort_qdq.py MODEL.onnx CALIB_DIR OUT.onnx [--kiln-table FILE]

ONNX Runtime's own static quantizer (`onnxruntime.quantization.quantize_static`) in its QDQ
format, the way ORT's documentation tells a user to quantize for x86: per-channel symmetric INT8
weights, asymmetric UINT8 activations (U8S8), every Conv / Gemm / MatMul / Add / pooling ORT
knows how to quantize. Calibration runs over the same .npy batches kiln calibrated on (CALIB_DIR,
one file per batch, the model's first input). With --kiln-table (kiln's --calib-cache file) every
tensor kiln has a range for gets exactly that range (TensorQuantOverrides rmin/rmax: [0, amax]
where kiln saw no negative value, else [-amax, amax]); tensors kiln does not quantize (a residual
branch before its Add, the Add's output) keep ORT's MinMax range from the same data.

Needs the `onnxruntime` and `onnx` Python packages (the lent GPU machines have them; the
development machine does not) — scripts/cpu_amx_bench.sh calls it there.
"""
import argparse
import glob
import os
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)


class NpyReader(CalibrationDataReader):
    def __init__(self, files, name):
        self.files, self.name, self.i = files, name, 0

    def get_next(self):
        if self.i >= len(self.files):
            return None
        self.i += 1
        return {self.name: np.load(self.files[self.i - 1])}

    def rewind(self):
        self.i = 0


def kiln_ranges(path):
    """kiln-calibration-table 1: `range <amax> <min> <max> <tensor name>` lines."""
    ranges = {}
    with open(path) as f:
        if not f.readline().startswith("kiln-calibration-table"):
            raise SystemExit(f"{path}: not a kiln calibration table")
        for line in f:
            if line.startswith("range "):
                _, amax, lo, _hi, name = line.rstrip("\n").split(" ", 4)
                amax = float(amax)
                ranges[name] = (0.0 if float(lo) >= 0 else -amax, amax)
    return ranges


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("calib_dir")
    ap.add_argument("output")
    ap.add_argument("--kiln-table")
    a = ap.parse_args()
    m = onnx.load(a.model)
    names = {v for n in m.graph.node for v in n.output} | {i.name for i in m.graph.input}
    feed = m.graph.input[0].name
    files = sorted(glob.glob(os.path.join(a.calib_dir, "*.npy")))
    if not files:
        raise SystemExit(f"{a.calib_dir}: no .npy calibration batches")
    extra = {}
    if a.kiln_table:
        r = {k: v for k, v in kiln_ranges(a.kiln_table).items() if k in names}
        extra["TensorQuantOverrides"] = {
            k: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for k, (lo, hi) in r.items()}
        print(f"kiln ranges for {len(r)} tensors; ORT MinMax for the rest")
    tmp = a.output + ".tmp"
    quantize_static(a.model, tmp, NpyReader(files, feed), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options=extra)
    os.replace(tmp, a.output)
    q = onnx.load(a.output)
    ops = {}
    for n in q.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"wrote {a.output}: {len(files)} calibration batches, nodes {ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
