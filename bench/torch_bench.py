#!/usr/bin/python3
"""PyTorch peer of `kiln bench` (bench/run_peer_bench.sh).

    /usr/bin/python3 bench/torch_bench.py NAME --input FILE.npy [--iterations N] [--warmup N]
        [--threads N] [--models DIR] [--output-dir DIR] [--json FILE]

Rebuilds model NAME exactly as bench/export_models.py exported it (same module, the saved
state dict), then TorchScript: torch.jit.trace -> torch.jit.freeze ->
torch.jit.optimize_for_inference, under torch.inference_mode() with torch.set_num_threads
(default 2; the BLAS threading is set per model, see below). Times the call only; prints the
same statistics as `kiln bench` and writes the output of the last run as .npy.
"""
import argparse
import contextlib
import json
import os
import sys
import time

# Threading (decided before numpy/torch load their runtimes). Debian's torch runs Linear/matmul
# on the system BLAS (OpenBLAS, from bench/setup.sh) with OpenBLAS's own threads, and
# convolutions on oneDNN with OpenMP threads; on 2 cores the two pools must not spin against
# each other. BLAS-bound models (bert_base): OpenBLAS gets the threads and OpenMP threads sleep
# when idle (OMP_WAIT_POLICY=PASSIVE): 122 ms instead of 260 ms. CNNs: OpenBLAS runs on the
# calling thread only (the classifier), so its idle workers cannot steal the cores from oneDNN:
# 24 ms instead of 31 ms for ResNet-50 at batch 1.
_threads = "2"
for _i, _arg in enumerate(sys.argv):
    if _arg == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
if "bert_base" in sys.argv[1:2]:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
else:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402


def stats(ms):
    ms = np.asarray(ms)
    return {"min": float(ms.min()), "mean": float(ms.mean()), "median": float(np.median(ms)),
            "p90": float(np.percentile(ms, 90)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)),
            "stddev": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0}


def quantize_int8(model, x, calib_dir):
    """PyTorch's own post-training INT8 recipes on CPU; returns (model, description)."""
    import glob
    if x.dim() != 4:  # transformer: int8 weights, activations quantized per call
        q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return q, f"dynamic INT8 Linear, engine {torch.backends.quantized.engine}"
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    engines = torch.backends.quantized.supported_engines
    engine = "x86" if "x86" in engines else "onednn" if "onednn" in engines else "fbgemm"
    torch.backends.quantized.engine = engine
    files = sorted(glob.glob(os.path.join(calib_dir, "*.npy"))) if calib_dir else []
    if not files:
        raise SystemExit("--int8 on a CNN needs --calib DIR with .npy calibration batches")
    prepared = prepare_fx(model, get_default_qconfig_mapping(engine), example_inputs=(x,))
    with torch.inference_mode():
        for f in files:
            prepared(torch.from_numpy(np.load(f)))
    return convert_fx(prepared), f"FX static INT8, {engine} backend, {len(files)} calibration batches"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--input", required=True)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=os.path.join(here, "models"))
    ap.add_argument("--output-dir")
    ap.add_argument("--json")
    ap.add_argument("--bf16", action="store_true",
                    help="channels-last (4-D inputs) + BF16 autocast, traced and frozen under "
                         "autocast (the issue's PyTorch BF16 peer; docs/precision.md)")
    ap.add_argument("--int8", action="store_true",
                    help="post-training INT8 (the issue's PyTorch INT8 peer): CNNs through FX "
                         "static quantization with the x86 backend (onednn where this torch has "
                         "no x86 engine) calibrated on --calib, BERT through dynamic quantization "
                         "of its Linear layers; then traced and frozen")
    ap.add_argument("--calib", help="directory of .npy calibration batches (--int8 CNNs)")
    a = ap.parse_args()
    if a.bf16 and a.int8:
        ap.error("--bf16 and --int8 exclude each other")
    torch.set_num_threads(a.threads)
    model, _ = export_models.build(a.name)
    model.load_state_dict(torch.load(os.path.join(a.models, a.name + ".pt")))
    x = torch.from_numpy(np.load(a.input))
    autocast = contextlib.nullcontext()
    int8_how = ""
    if a.int8:
        model, int8_how = quantize_int8(model, x, a.calib)
    if a.bf16:
        if x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        torch._C._jit_set_autocast_mode(False)  # trace the autocast casts into the graph
        autocast = torch.cpu.amp.autocast(dtype=torch.bfloat16)
    with torch.inference_mode(), autocast:
        # check_trace: under autocast the re-traced graph names its casts differently.
        traced = torch.jit.freeze(torch.jit.trace(model, x, check_trace=not a.bf16))
        scripted = traced if a.bf16 or a.int8 else torch.jit.optimize_for_inference(traced)
        t0 = time.perf_counter()
        out = scripted(x)
        first_ms = (time.perf_counter() - t0) * 1e3
        for _ in range(1, a.warmup):
            out = scripted(x)
        ms = []
        for _ in range(a.iterations):
            t = time.perf_counter()
            out = scripted(x)
            ms.append((time.perf_counter() - t) * 1e3)
    lat = stats(ms)
    print(f"model       {a.name}\nruntime     torch {torch.__version__} TorchScript "
          f"(traced, frozen, {'channels-last + BF16 autocast' if a.bf16 else int8_how or 'optimize_for_inference'}; "
          f"{a.threads} threads)")
    print("latency     " + "  ".join(f"{k} {lat[k]:.3f}" for k in
                                     ("min", "mean", "median", "p90", "p95", "p99")) +
          f" ms  (CV {100 * lat['stddev'] / lat['mean']:.1f}%)")
    if a.output_dir:
        os.makedirs(a.output_dir, exist_ok=True)
        np.save(os.path.join(a.output_dir, "output.npy"), out.float().numpy())
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.name, "runtime": "torch", "version": torch.__version__,
                       "batch": int(x.shape[0]), "precision": "bf16" if a.bf16 else "int8" if a.int8 else "fp32", "threads": a.threads,
                       "iterations": a.iterations, "warmup": a.warmup, "first_run_ms": first_ms,
                       "latency_ms": lat,
                       "throughput_per_s": 1000 * int(x.shape[0]) / lat["mean"]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
