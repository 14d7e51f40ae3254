#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/fuzz_targets.h) from the fixtures.

    fuzz/make_seeds.py OUT_DIR [--fixtures DIR] [--kiln PATH_TO_KILN_CLI]

OUT_DIR/<target>/ gets a few small inputs per target: ONNX node models from Debian's
libonnx-testdata and models/, GraphDefs (.pb, and .pbtxt through protoc --decode), SavedModels
and TensorBundles packed in the archive format of fuzz_targets.h, a TF.js model.json + shard,
the .npy/.npz test files, engine plans (made with `kiln convert` when a kiln binary is given;
both whole plans and their bare payloads) and calibration tables. Seeds over 256 KiB are
skipped (they slow the fuzzers down). Nothing here is committed: scripts/fuzz.sh regenerates it.
"""
import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

MAX_SEED = 256 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pack(files):
    out = b""
    for name, data in files:
        n = name.encode()
        out += bytes([len(n)]) + n + struct.pack("<I", len(data)) + data
    return out


def read(p):
    with open(p, "rb") as f:
        return f.read()


class Corpus:
    def __init__(self, out):
        self.out = out
        self.counts = {}

    def add(self, target, name, data):
        if not data or len(data) > MAX_SEED:
            return
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        with open(os.path.join(d, safe), "wb") as f:
            f.write(data)
        self.counts[target] = self.counts.get(target, 0) + 1


def dir_files(d):
    files = []
    for root, _, names in os.walk(d):
        for n in sorted(names):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, d)
            if rel.endswith(".npy") or rel == "manifest.json":
                continue
            files.append((rel, read(p)))
    return files


def tfjs_model():
    w = struct.pack("<2f", 1.5, -2.0)
    model = {
        "format": "graph-model", "generatedBy": "seed", "convertedBy": "kiln-seed",
        "modelTopology": {"node": [
            {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"},
             "shape": {"shape": {"dim": [{"size": "2"}]}}}},
            {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"},
             "value": {"tensor": {"dtype": "DT_FLOAT",
                                  "tensorShape": {"dim": [{"size": "2"}]}}}}},
            {"name": "y", "op": "AddV2", "input": ["x", "w"], "attr": {"T": {"type": "DT_FLOAT"}}},
            {"name": "out", "op": "Relu", "input": ["y"], "attr": {"T": {"type": "DT_FLOAT"}}}],
            "versions": {"producer": 1}},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [
            {"name": "w", "shape": [2], "dtype": "float32"}]}],
        "signature": {"inputs": {"x:0": {"name": "x:0"}}, "outputs": {"out:0": {"name": "out:0"}}},
    }
    yield "simple", [("model.json", json.dumps(model).encode()), ("w.bin", w)]
    q = json.loads(json.dumps(model))
    q["weightsManifest"][0]["weights"][0]["quantization"] = {"dtype": "uint8", "min": -2.0,
                                                            "scale": 0.0137}
    yield "quant_uint8", [("model.json", json.dumps(q).encode()), ("w.bin", b"\xff\x00")]
    h = json.loads(json.dumps(model))
    h["weightsManifest"][0]["weights"][0]["quantization"] = {"dtype": "float16"}
    yield "float16", [("model.json", json.dumps(h).encode()), ("w.bin", b"\x00\x3e\x00\xc0")]


def plans(kiln, fixtures, corpus):
    sm = os.path.join(fixtures, "saved_model", "regression")
    if not kiln or not os.path.exists(kiln) or not os.path.isdir(sm):
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "conv")
        r = subprocess.run([kiln, "convert", sm, "--tags", "serve", "--signature",
                            "serving_default", "--input-shape", "X=8",
                            "--minimum-segment-size", "1", "-o", out],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            print("make_seeds: kiln convert failed; no plan seeds", file=sys.stderr)
            return
        for p in sorted(glob.glob(os.path.join(out, "assets", "*.plan"))):
            b = read(p)
            corpus.add("plan", os.path.basename(p), b)
            # "KILNPLAN" u32 version u32 header_len header u64 payload_len payload u32 crc
            if len(b) > 16 and b[:8] == b"KILNPLAN":
                hlen = struct.unpack_from("<I", b, 12)[0]
                off = 16 + hlen
                if off + 8 <= len(b):
                    plen = struct.unpack_from("<Q", b, off)[0]
                    corpus.add("plan", os.path.basename(p) + ".payload", b[off + 8:off + 8 + plen])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--fixtures", default=os.environ.get(
        "KILN_FIXTURES_DIR", os.path.join(ROOT, "..", "shared", "fixtures")))
    ap.add_argument("--kiln", default="")
    a = ap.parse_args()
    c = Corpus(a.out)

    # ONNX: small node models of the ONNX test data, and the bundled model if small.
    node = sorted(glob.glob("/usr/share/libonnx-testdata/data/node/*/model.onnx"))
    for p in node[::20]:
        c.add("onnx", os.path.basename(os.path.dirname(p)) + ".onnx", read(p))
    for p in glob.glob(os.path.join(ROOT, "models", "*", "*.onnx")):
        c.add("onnx", os.path.basename(os.path.dirname(p)) + ".onnx", read(p))

    # GraphDef .pb and .pbtxt (protoc --decode).
    proto_dir = os.path.join(ROOT, "proto")
    gd = sorted(glob.glob(os.path.join(a.fixtures, "graphdef", "*", "*.pb")))
    for p in gd:
        name = os.path.basename(os.path.dirname(p))
        b = read(p)
        c.add("graphdef_pb", name + ".pb", b)
        if len(b) > MAX_SEED:
            continue
        r = subprocess.run(["protoc", "--decode=kiln.tfpb.GraphDef", "-I", proto_dir,
                            os.path.join(proto_dir, "tensorflow.proto")], input=b,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            c.add("graphdef_pbtxt", name + ".pbtxt", r.stdout)
    handmade = (
        b'node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\n'
        b'node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }\n'
        b'  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } }\n'
        b'  float_val: 1.5 float_val: -2 } } } }\n'
        b'node { name: "a" op: "AddV2" input: "x" input: "w" attr { key: "T" value { type: DT_FLOAT } } }\n'
        b'node { name: "r" op: "Relu" input: "a:0" attr { key: "T" value { type: DT_FLOAT } } }\n')
    c.add("graphdef_pbtxt", "handmade.pbtxt", handmade)
    r = subprocess.run(["protoc", "--encode=kiln.tfpb.GraphDef", "-I", proto_dir,
                        os.path.join(proto_dir, "tensorflow.proto")], input=handmade,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode == 0:
        c.add("graphdef_pb", "handmade.pb", r.stdout)

    # SavedModels and their TensorBundles.
    for d in sorted(glob.glob(os.path.join(a.fixtures, "saved_model", "*"))):
        if not os.path.exists(os.path.join(d, "saved_model.pb")):
            continue
        files = dir_files(d)
        c.add("saved_model", os.path.basename(d), pack(files))
        bundle = [(os.path.basename(n), b) for n, b in files if n.startswith("variables/")]
        if bundle:
            c.add("tensor_bundle", os.path.basename(d), pack(bundle))
    ck = os.path.join(a.fixtures, "checkpoint", "regression")
    if os.path.isdir(ck):
        files = [(n.replace("model.", "variables."), b) for n, b in dir_files(ck)
                 if n.startswith("model.") and not n.endswith(".meta")]
        c.add("tensor_bundle", "checkpoint_regression", pack(files))

    # TF.js.
    for name, files in tfjs_model():
        c.add("tfjs", name, pack(files))

    # .npy / .npz.
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "npy", "*.np[yz]"))):
        c.add("npy" if p.endswith(".npy") else "npz", os.path.basename(p), read(p))
    for p in sorted(glob.glob(os.path.join(a.fixtures, "*", "*", "input_0.npy")))[:6]:
        c.add("npy", p.split(os.sep)[-2] + "_input_0.npy", read(p))

    # Engine plans.
    plans(a.kiln, a.fixtures, c)

    # Calibration tables.
    c.add("calibration_table", "entropy.calib",
          b"kiln-calibration-table 1\nkiln_version 0.1.0\ncalibrator entropy\n"
          b"range 2.5 -2.25 2.5 x\nrange 0.75 0 0.75 conv_1/out:0\n")
    c.add("calibration_table", "minmax.calib",
          b"kiln-calibration-table 1\nkiln_version 0.1.0\ncalibrator minmax\n"
          b"range 1e-05 -1e-05 3e-06 a b c\n")

    for t in sorted(c.counts):
        print(f"{t}: {c.counts[t]} seeds")


if __name__ == "__main__":
    main()
