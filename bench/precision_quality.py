#!/usr/bin/python3
"""Quality and speed of kiln's reduced-precision engines on real inputs (issue 5).

  /usr/bin/python3 bench/precision_quality.py [--modes fp32,bf16] [--models resnet50,...]
      [--inputs 240] [--batch 16] [--speed-batches 1,8] [--rounds 3] [--iterations 10]
      [--no-speed] [--no-ort] [--out DIR] [--kiln PATH]

Inputs are natural photographs: the photos shipped in Debian's python3-skimage data directory
(astronaut, coffee, chelsea, rocket, ...), each cut into distinct variants by random crops
(35-100% of the short side, aspect 3:4..4:3), horizontal flips and rescaling to the model's
input size (fixed seed; never noise). Classifiers get ImageNet normalization (ResNet-50,
MobileNetV2), PaddleOCR's (x/255-0.5)/0.5 (ppocr_cls), RGB 0..255 NHWC (faceres) or luma
(y-0.5)*2 NHWC (emotion, gender), as their fixtures' recipes say. BERT-base gets token ids of real
English text (words of /usr/share/common-licenses/GPL-3 hashed into its vocabulary).

A second, in-domain input set (`--input-sets photos,indomain`, the default; bench/
indomain_inputs.py): text lines rendered with Debian's fonts for ppocr_cls, LFW faces for the
face models; its INT8 calibration inputs come from disjoint sources. Per classifier the report
also gives the FP32 margin (top-1 minus top-2 probability) of every input whose top-1 flips.

For every model and mode the model is converted once (`kiln convert --precision MODE`), every
input batch is run through it (`kiln run`), and the outputs are compared with the FP32 mode's
(the FP32 engine matches the reference kernels to 1e-5): top-1 agreement (classifiers), rel. L2
of the outputs (||mode - fp32|| / ||fp32||, all inputs together, and the worst single input),
and the conversion summary's layer precision counts. A mode is just a parameter:
`--modes fp32,bf16,int8`; INT8 calibrates on inputs the evaluation does not use. A mode with a
budget, e.g. `bf16@0.003`, converts with `--max-accuracy-loss 0.003` measured on those same
calibration inputs (the layers it keeps in FP32 are benched the same way, `--fp32-layers`).

Speed: per model and batch, ROUNDS rounds alternate `kiln bench --precision MODE` for every
mode and ONNX Runtime FP32 (bench/peer_bench.js), each under `chrt -f 1` when root; the table
gives medians of the per-round medians and ratios. Results go to OUT/results.json and a
markdown table OUT/report.md.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Photographs among skimage's data files (not drawings, test patterns or binary images).
PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
          "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
          "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
          "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg",
          "text.png"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

TFJS = os.path.join(os.environ.get("KILN_CACHE_DIR", os.path.join(REPO, ".cache", "tfjs")),
                    "package", "models")  # scripts/fetch_tfjs_models.sh

MODELS = {
    # name: (model path, input name, (H, W) or None, normalization, classifier?, output file
    # (the .npy `kiln run` writes; None: the first)). bench/models' ResNet-50 / MobileNetV2 /
    # BERT have random weights (bench/export_models.py): their top-1 is near-constant. The
    # trained classifiers are PaddleOCR's text-direction classifier (2 classes) and the TF.js
    # fixture models: faceres' age head (100 classes), emotion (7), gender (2).
    "resnet50": (os.path.join(HERE, "models", "resnet50.onnx"), "input", (224, 224), "imagenet", True, None),
    "mobilenetv2": (os.path.join(HERE, "models", "mobilenetv2.onnx"), "input", (224, 224), "imagenet", True, None),
    "ppocr_cls": (os.path.join(REPO, "models", "ppocr_cls", "model.onnx"), "x", (48, 192), "ppocr", True, None),
    "faceres": (os.path.join(TFJS, "faceres.json"), "input_1", (224, 224), "raw255_nhwc", True, "age_pred_Softmax_0.npy"),
    "emotion": (os.path.join(TFJS, "emotion.json"), "input_1", (64, 64), "luma_nhwc", True, None),
    "gender": (os.path.join(TFJS, "gender.json"), "input_1", (64, 64), "luma_nhwc", True, None),
    "bert_base": (os.path.join(HERE, "models", "bert_base.onnx"), "input_ids", None, "tokens", False, None),
}


def log(msg):
    print(msg, flush=True)


def load_photos():
    from skimage import data_dir, io
    photos = []
    for name in PHOTOS:
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            continue
        img = io.imread(path)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(1, img.max()))).astype(np.uint8)
        photos.append((name, img))
    if not photos:
        sys.exit("precision_quality.py: no skimage photos found (apt-get install python3-skimage)")
    return photos


def variants(photos, n, hw, seed):
    """n distinct crops/flips/scales of the photos, as float [0,1] HWC arrays of size hw."""
    import indomain_inputs as ind

    def size(h, w, rng):  # 35-100% of the short side, aspect 3:4..4:3 of the target's
        s = rng.uniform(0.35, 1.0) * min(h, w)
        aspect = rng.uniform(0.75, 1.333) * (hw[1] / hw[0])
        return int(min(h, s)), int(min(w, s * aspect))
    return ind.distinct_crops([img for _, img in photos], n, hw, np.random.default_rng(seed), size)


def normalize(imgs, how):
    x = np.stack(imgs)  # N,H,W,3 in [0,1]
    if how == "raw255_nhwc":
        return np.ascontiguousarray((x * 255).astype(np.float32))
    if how == "luma_nhwc":
        luma = x[..., 0] * 0.2989 + x[..., 1] * 0.5870 + x[..., 2] * 0.1140
        return np.ascontiguousarray(((luma - 0.5) * 2)[..., None].astype(np.float32))
    if how == "imagenet":
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    else:  # ppocr
        x = (x - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).astype(np.float32))


def token_batches(n, seq=128, vocab=30522):
    text = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()
    words = re.findall(r"[A-Za-z']+|[.,;:()]", text)
    ids = [101 + int(hashlib.md5(w.lower().encode()).hexdigest()[:8], 16) % (vocab - 200)
           for w in words]
    rows = []
    for i in range(n):
        start = (i * 97) % (len(ids) - seq)
        rows.append([101] + ids[start:start + seq - 2] + [102])
    return np.array(rows, dtype=np.int64)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(" ".join(cmd) + " failed:\n" + r.stdout[-4000:])
    return r.stdout


def prio():
    return ["chrt", "-f", "1"] if os.geteuid() == 0 and shutil.which("chrt") else []


def load_avg():
    return open("/proc/loadavg").read().split()[:3]


def isa_info():
    flags = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = line
            break
    have = [f for f in ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                        "avx512_fp16", "amx_bf16", "amx_int8"] if re.search(r"\b" + f + r"\b", flags)]
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "features": have, "cores": os.cpu_count()}


def rel_l2(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# In-domain input sets (bench/indomain_inputs.py): text lines for the text-direction
# classifier, faces for the face models. The other models have only the photo set.
INDOMAIN = {"ppocr_cls": "text_lines", "faceres": "faces", "emotion": "faces", "gender": "faces"}


def inputs_of(args, name, input_set, n, split):
    """The model's inputs of one set: "photos" (eval: seed 5, calib: seed 11) or "indomain"
    (eval / calib: disjoint sources). Normalized as the model expects."""
    hw, norm = MODELS[name][2:4]
    if norm == "tokens":
        x = token_batches(n)
        return x if split == "eval" else x[::-1].copy()
    if input_set == "photos":
        return normalize(variants(args.photos, n, hw, seed=5 if split == "eval" else 11), norm)
    import indomain_inputs as ind
    if INDOMAIN[name] == "text_lines":
        return ind.text_lines(n, split, hw)[0]
    return normalize(ind.face_images(n, split, hw), norm)


def set_dir(out, name, input_set):
    return os.path.join(out, name) if input_set == "photos" else os.path.join(out, name, input_set)


def int8_flags(args, name, out, for_bench=False, input_set="photos"):
    """INT8: calibration batches (inputs the evaluation does not use: other crops of the same
    photos, seed 11, or the calib split of the in-domain set) -> `kiln convert --calib-data`,
    whose table (--calib-cache) kiln bench reuses."""
    d = set_dir(out, name, input_set)
    table = os.path.join(d, "int8_calibration_%s.txt" % args.calib_method)
    if for_bench:
        return ["--calib-cache", table]
    cdir = os.path.join(d, "calib")
    os.makedirs(cdir, exist_ok=True)
    x = inputs_of(args, name, input_set, args.calib_inputs, "calib")
    for i in range(0, len(x), args.batch):
        np.save(os.path.join(cdir, "calib_%03d.npy" % (i // args.batch)), x[i:i + args.batch])
    if os.path.exists(table):
        os.remove(table)
    return ["--calib-data", cdir, "--calib-method", args.calib_method, "--calib-cache", table]


def budget_flags(args, name, out, budget, input_set="photos", int8=False):
    """A mode "bf16@0.005": BF16 with the accuracy budget (--max-accuracy-loss 0.005), its
    error measured on the calibration batches (int8_flags' inputs); "int8@0.005" calibrates on
    them too."""
    flags = int8_flags(args, name, out, input_set=input_set)
    return (flags if int8 else flags[:2]) + ["--max-accuracy-loss", budget]


# (model, mode) -> the layers the accuracy budget kept in FP32 (speed() benches the same engine).
KEPT = {}


def margins(y):
    """FP32 margin per input: top-1 minus top-2 probability (softmax applied when the outputs
    are not probabilities already)."""
    y = y.reshape(len(y), -1).astype(np.float64)
    if not (np.all(y >= 0) and np.allclose(y.sum(1), 1, atol=1e-3)):
        y = np.exp(y - y.max(1, keepdims=True))
        y /= y.sum(1, keepdims=True)
    s = np.sort(y, 1)
    return s[:, -1] - s[:, -2] if y.shape[1] > 1 else s[:, -1]


def quality(args, name, modes, out, input_set="photos"):
    path, in_name, hw, norm, classifier, out_file = MODELS[name]
    d = set_dir(out, name, input_set)
    os.makedirs(d, exist_ok=True)
    if norm == "tokens":
        n = max(args.batch, args.inputs // 8)
        x = inputs_of(args, name, input_set, n, "eval")
        shape = "-1,128"
    else:
        x = inputs_of(args, name, input_set, args.inputs, "eval")
        shape = ("-1,%d,%d,%d" % (hw[0], hw[1], x.shape[3]) if norm.endswith("nhwc")
                 else "-1,3,%d,%d" % hw)
    batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]
    files = []
    for i, b in enumerate(batches):
        f = os.path.join(d, "input_%03d.npy" % i)
        np.save(f, b)
        files.append(f)
    log("%s (%s): %d inputs in %d batches" % (name, input_set, len(x), len(files)))
    outs, summaries = {}, {}
    for mode in modes:
        conv = os.path.join(d, "%s_%s.onnx" % (name, mode))
        t0 = time.time()
        precision, _, budget = mode.partition("@")
        text = run([args.kiln, "convert", path, "-o", conv, "--precision", precision,
                    "--max-batch-size", str(args.batch), "--input-shape", in_name + "=" + shape]
                   + args.convert_flags.split()
                   + (int8_flags(args, name, out, input_set=input_set) if mode == "int8"
                      else budget_flags(args, name, out, budget, input_set, precision == "int8")
                      if budget else []))
        if budget:
            KEPT[(name, mode)] = re.findall(r"kept in FP32: layer '(.*)'", text)
        summaries[mode] = {"text": text,
                           "accuracy_budget": re.findall(r"accuracy budget: (.*)", text),
                           "layer_precisions": re.findall(r"layer precisions:(.*)", text),
                           "warnings": re.findall(r"warning: (.*)", text),
                           "convert_s": time.time() - t0}
        ys = []
        for i, f in enumerate(files):
            od = os.path.join(d, "out_%s_%03d" % (mode, i))
            run([args.kiln, "run", conv, "--input", in_name + "=" + f, "--output-dir", od])
            outs_i = sorted(glob.glob(os.path.join(od, "*.npy")))
            if out_file:
                outs_i = [os.path.join(od, out_file)]
            ys.append(np.load(outs_i[0]))
        outs[mode] = np.concatenate(ys)
        log("  %s: converted in %.1f s, layer precisions%s%s" % (
            mode, summaries[mode]["convert_s"], "; ".join(summaries[mode]["layer_precisions"]),
            ("; warning: " + "; ".join(summaries[mode]["warnings"])) if summaries[mode]["warnings"] else ""))
    res = {"inputs": int(len(x)), "input_set": input_set, "modes": {}}
    ref = outs[modes[0]]
    if classifier:
        ref_margin = margins(ref)
        res["fp32_margin_median"] = float(np.median(ref_margin))
        res["fp32_margin_below_0.02"] = int((ref_margin < 0.02).sum())
    for mode in modes:
        y = outs[mode]
        per = [rel_l2(y[i], ref[i]) for i in range(len(ref))]
        r = {"rel_l2": rel_l2(y, ref), "rel_l2_worst_input": max(per),
             "layer_precisions": summaries[mode]["layer_precisions"],
             "accuracy_budget": summaries[mode]["accuracy_budget"],
             "warnings": summaries[mode]["warnings"]}
        if classifier:
            top_ref = ref.reshape(len(ref), -1).argmax(1)
            top = y.reshape(len(y), -1).argmax(1)
            r["top1_agreement"] = float((top == top_ref).mean())
            r["top1_disagreements"] = int((top != top_ref).sum())
            r["distinct_top1_fp32"] = int(len(set(top_ref.tolist())))
            # The FP32 margin of every input whose top-1 differs, and the agreement on the
            # inputs FP32 is not near a tie on (margin >= 0.02).
            r["flip_fp32_margins"] = sorted(round(float(v), 4) for v in ref_margin[top != top_ref])
            sure = ref_margin >= 0.02
            r["top1_agreement_margin_ge_0.02"] = (float((top == top_ref)[sure].mean())
                                                   if sure.any() else None)
        res["modes"][mode] = r
        log("  %s vs %s: %s" % (mode, modes[0], json.dumps(r)))
    return res


def speed(args, name, modes, out, ort=True):
    path, in_name, hw, norm = MODELS[name][:4]
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    res = {}
    for batch in args.speed_batches:
        if name == "bert_base" and batch > 1 and not args.bert_batches:
            continue
        f = os.path.join(d, "speed_input_b%d.npy" % batch)
        if norm == "tokens":
            np.save(f, token_batches(batch))
        else:
            np.save(f, normalize(variants(args.photos, batch, hw, seed=99), norm))
        # An INT8 budget also keeps tensors out of INT8 (int8_keep_float), which kiln bench
        # cannot take: such modes are measured for quality only.
        runners = [("kiln_" + m, m) for m in modes if not m.startswith("int8@")]
        if ort and not args.no_ort:  # ORT reads ONNX only
            runners.append(("ort_fp32", None))
        times = {r: [] for r, _ in runners}
        for rnd in range(args.rounds):
            order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
            for label, mode in order:
                j = os.path.join(d, "bench_%s_b%d_%d.json" % (label, batch, rnd))
                if mode is not None:
                    precision = mode.partition("@")[0]
                    cmd = prio() + [args.kiln, "bench", path, "--precision", precision,
                                    "--input", in_name + "=" + f, "--iterations",
                                    str(args.iterations), "--warmup", "2", "--threads",
                                    str(args.threads), "--json", j] + args.convert_flags.split()
                    if mode == "int8":
                        cmd += int8_flags(args, name, out, for_bench=True)
                    if KEPT.get((name, mode)):
                        cmd += ["--fp32-layers", ",".join(KEPT[(name, mode)])]
                else:
                    cmd = prio() + ["node", os.path.join(HERE, "peer_bench.js"), path, "--input",
                                    in_name + "=" + f, "--iterations", str(args.iterations),
                                    "--warmup", "2", "--threads", str(args.threads), "--json", j]
                run(cmd)
                times[label].append(json.load(open(j))["latency_ms"]["median"])
        med = {k: float(np.median(v)) for k, v in times.items()}
        entry = {"median_ms": med, "rounds": times, "load_avg": load_avg()}
        base = med.get("kiln_fp32")
        for label in med:
            if base:
                entry.setdefault("speedup_vs_kiln_fp32", {})[label] = base / med[label]
            if "ort_fp32" in med:
                entry.setdefault("speedup_vs_ort_fp32", {})[label] = med["ort_fp32"] / med[label]
        res["batch%d" % batch] = entry
        log("  %s batch %d: %s" % (name, batch, json.dumps(entry)))
    return res


def report(results, out):
    lines = ["# precision_quality.py results", "",
             "CPU: %s; features: %s; load before: %s" % (
                 results["machine"]["cpu"], ", ".join(results["machine"]["features"]),
                 " ".join(results["load_start"])), ""]
    lines += ["| model | mode | inputs | top-1 agreement | FP32 margins of the flips | "
              "rel. L2 (all) | worst input | layer precisions |",
              "|---|---|---|---|---|---|---|---|"]
    for key in ["quality", "quality_indomain"]:
        for name, r in results.get(key, {}).items():
            for mode, m in r["modes"].items():
                top = ("%.2f%% (%d differ; %d distinct FP32 classes)" % (
                    100 * m["top1_agreement"], m["top1_disagreements"], m["distinct_top1_fp32"])
                       if "top1_agreement" in m else "-")
                flips = m.get("flip_fp32_margins")
                lines.append("| %s | %s | %d %s | %s | %s | %.2e | %.2e | %s |" % (
                    name, mode, r["inputs"], r.get("input_set", "photos"), top,
                    (", ".join("%.3f" % v for v in flips) or "none") if flips is not None else "-",
                    m["rel_l2"], m["rel_l2_worst_input"],
                    "; ".join(s.strip() for s in m["layer_precisions"])))
    if results.get("speed"):
        lines += ["", "| model | batch | runtime | median ms | vs kiln FP32 | vs ORT FP32 |",
                  "|---|---|---|---|---|---|"]
        for name, r in results["speed"].items():
            for b, e in r.items():
                for label, ms in e["median_ms"].items():
                    lines.append("| %s | %s | %s | %.2f | %s | %s |" % (
                        name, b[5:], label, ms,
                        "%.2fx" % e["speedup_vs_kiln_fp32"][label] if "speedup_vs_kiln_fp32" in e else "-",
                        "%.2fx" % e["speedup_vs_ort_fp32"][label] if "speedup_vs_ort_fp32" in e else "-"))
    open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
    log("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=None)
    ap.add_argument("--modes", default="fp32,bf16")
    ap.add_argument("--models",
                    default="ppocr_cls,faceres,emotion,gender,mobilenetv2,resnet50,bert_base")
    ap.add_argument("--inputs", type=int, default=240)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--speed-batches", default="1,8")
    ap.add_argument("--bert-batches", action="store_true", help="also time BERT above batch 1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--convert-flags", default="", help="extra flags for kiln convert/bench")
    ap.add_argument("--calib-inputs", type=int, default=128, help="int8: calibration inputs")
    ap.add_argument("--calib-method", default="entropy", help="int8: entropy|minmax|percentile")
    ap.add_argument("--input-sets", default="photos,indomain",
                    help="photos (skimage's photographs) and/or indomain (text lines for "
                         "ppocr_cls, faces for the face models: bench/indomain_inputs.py)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "precision-" + time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    if args.kiln is None:
        for k in ["build-bench/bin/kiln", "build/bin/kiln"]:
            if os.access(os.path.join(REPO, k), os.X_OK):
                args.kiln = os.path.join(REPO, k)
                break
    if not args.kiln:
        sys.exit("precision_quality.py: no kiln binary (--kiln PATH)")
    args.speed_batches = [int(b) for b in args.speed_batches.split(",")]
    modes = args.modes.split(",")
    if modes[0] != "fp32":
        modes.insert(0, "fp32")  # the baseline the others are compared with
    os.makedirs(args.out, exist_ok=True)
    args.photos = load_photos()
    results = {"machine": isa_info(), "load_start": load_avg(), "kiln": args.kiln,
               "photos": [p for p, _ in args.photos], "quality": {}, "quality_indomain": {},
               "speed": {}}
    sets = args.input_sets.split(",")
    for name in args.models.split(","):
        if not os.path.exists(MODELS[name][0]):
            log("%s: %s missing, skipped (bench/export_models.py)" % (name, MODELS[name][0]))
            continue
        if not args.no_quality and "photos" in sets:
            results["quality"][name] = quality(args, name, modes, args.out)
        if not args.no_quality and "indomain" in sets and name in INDOMAIN:
            results["quality_indomain"][name] = quality(args, name, modes, args.out, "indomain")
        if not args.no_speed:
            results["speed"][name] = speed(args, name, modes, args.out,
                                           ort=MODELS[name][0].endswith(".onnx"))
        json.dump(results, open(os.path.join(args.out, "results.json"), "w"), indent=2)
    results["load_end"] = load_avg()
    json.dump(results, open(os.path.join(args.out, "results.json"), "w"), indent=2)
    report(results, args.out)


if __name__ == "__main__":
    main()
