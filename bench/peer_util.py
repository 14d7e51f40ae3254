#!/usr/bin/python3
"""Helpers of bench/run_peer_bench.sh (numpy only).

    peer_util.py input MODEL_JSON BATCH OUT.npy   the case's input: fixed seed, non-constant
    peer_util.py table RESULTS_DIR [--markdown]   the comparison table of every case
"""
import glob
import json
import os
import sys

import numpy as np


def make_input(model_json, batch, out):
    spec = json.load(open(model_json))["input"]
    shape = [int(batch) if d == "N" else d for d in spec["shape"]]
    rng = np.random.default_rng(1234)
    if spec["dtype"] == "int64":
        x = rng.integers(spec["low"], spec["high"], size=shape, dtype=np.int64)
    else:
        x = rng.uniform(spec["low"], spec["high"], size=shape).astype(spec["dtype"])
    np.save(out, x)


def rel_l2(got, ref):
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    if got.shape != ref.shape:
        return float("nan")
    den = np.linalg.norm(ref)
    return float(np.linalg.norm(got - ref) / (den if den > 0 else 1.0))


def load_output(case_dir, runtime):
    files = sorted(glob.glob(os.path.join(case_dir, "out_" + runtime, "*.npy")))
    return np.load(files[0]) if files else None


def median_of_rounds(case_dir, runtime):
    meds = []
    for f in sorted(glob.glob(os.path.join(case_dir, f"{runtime}_round*.json"))):
        meds.append(json.load(open(f))["latency_ms"]["median"])
    return float(np.median(meds)) if meds else None, len(meds)


def table(results, markdown):
    rows = []
    for case_dir in sorted(glob.glob(os.path.join(results, "*_b*"))):
        case = os.path.basename(case_dir)
        model, batch = case.rsplit("_b", 1)
        kiln, n = median_of_rounds(case_dir, "kiln")
        ort, _ = median_of_rounds(case_dir, "ort")
        tor, _ = median_of_rounds(case_dir, "torch")
        outs = {r: load_output(case_dir, r) for r in ("kiln", "ort", "torch")}
        def agree(a, b):
            if outs[a] is None or outs[b] is None:
                return "-"
            return f"{rel_l2(outs[a], outs[b]):.1e}"
        def ms(v):
            return "-" if v is None else f"{v:.2f}"
        def ratio(a, b):
            return "-" if a is None or b is None else f"{a / b:.2f}"
        peers = [v for v in (ort, tor) if v is not None]
        best = min(peers) if peers else None
        rows.append([model, batch, ms(kiln), ms(ort), ratio(kiln, ort), ms(tor), ratio(kiln, tor),
                     ratio(kiln, best), agree("kiln", "ort"), agree("kiln", "torch"),
                     agree("ort", "torch"), str(n)])
    head = ["model", "batch", "kiln ms", "ORT ms", "kiln/ORT", "torch ms", "kiln/torch",
            "kiln/best", "rel L2 kiln-ORT", "rel L2 kiln-torch", "rel L2 ORT-torch", "rounds"]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def main(argv):
    if len(argv) >= 4 and argv[0] == "input":
        make_input(argv[1], argv[2], argv[3])
    elif len(argv) >= 2 and argv[0] == "table":
        table(argv[1], "--markdown" in argv)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
