"""In-domain inputs for bench/precision_quality.py (issue 5), all from Debian packages.

Text lines (PaddleOCR's text-direction classifier, 0 vs 180 degrees): phrases of real text
(/usr/share/common-licenses/*) rendered with real fonts (fonts-dejavu-core, fonts-liberation:
several families, weights and sizes, dark-on-light and light-on-dark, a little blur), plus strips
cut from the two photographs of text in python3-skimage's data (`text.png`, `page.png`); each
line upright and rotated by 180 degrees. Preprocessed as PaddleOCR's classifier does: resized to
height 48 keeping the aspect ratio (width at most 192), (x/255-0.5)/0.5, padded with zeros on the
right.

Faces (faceres age/gender, emotion, gender): the 100 LFW faces of skimage's `lfw_subset()`
(25x25 grey) and the astronaut's face (`astronaut.png`), with random crops (80-100%), shifts,
horizontal flips and rescaling to the model's input size.

Both generators take a `split`: "eval" and "calib" use disjoint sources (different phrases and
fonts' random draws / different LFW identities), so INT8 calibration never sees an evaluation
input. Fixed seeds; never noise.
"""
import glob
import os
import re

import numpy as np

FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation"]
LICENSES = "/usr/share/common-licenses"


def fonts():
    out = []
    for d in FONT_DIRS:
        for f in sorted(glob.glob(os.path.join(d, "*.ttf"))):
            base = os.path.basename(f)
            if "Math" in base or "ExtraLight" in base:
                continue
            out.append(f)
    if not out:
        raise SystemExit("indomain_inputs.py: no fonts (apt-get install fonts-dejavu-core "
                         "fonts-liberation)")
    return out


def phrases():
    """Short runs of words from the license texts (real English text)."""
    words = []
    for f in sorted(glob.glob(os.path.join(LICENSES, "*"))):
        if os.path.isdir(f) or os.path.islink(f):
            continue
        try:
            text = open(f, encoding="utf-8", errors="ignore").read()
        except OSError:
            continue
        words += re.findall(r"[A-Za-z0-9'\-.,;:()\"]+", text)
    return words


def _render_line(rng, font_path, text):
    """A text line on a plain background, cropped to the text with a margin; uint8 RGB."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    size = int(rng.integers(18, 48))
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left, bottom - top
    mx, my = int(rng.integers(2, 12)), int(rng.integers(2, 10))
    bg = rng.integers(170, 256, size=3) if rng.random() < 0.8 else rng.integers(0, 80, size=3)
    fg = rng.integers(0, 90, size=3) if bg.mean() > 128 else rng.integers(180, 256, size=3)
    img = Image.new("RGB", (w + 2 * mx, h + 2 * my), tuple(int(v) for v in bg))
    ImageDraw.Draw(img).text((mx - left, my - top), text, font=font,
                             fill=tuple(int(v) for v in fg))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    return np.asarray(img)


def _photo_strips(rng, n):
    """Horizontal strips of skimage's photographs of text (text.png, page.png)."""
    from skimage import data
    sources = [data.text(), data.page()]
    out = []
    k = 0
    while len(out) < n:
        img = sources[k % 2]
        k += 1
        h, w = img.shape
        sh = int(rng.integers(max(12, h // 12), max(13, h // 4)))
        sw = int(min(w, sh * rng.uniform(3.0, 8.0)))
        y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        strip = img[y:y + sh, x:x + sw]
        if strip.std() < 25:  # blank paper, no text: draw again
            continue
        out.append(np.stack([strip] * 3, axis=-1))
    return out


def ppocr_preprocess(rgb, hw=(48, 192)):
    """PaddleOCR ClsResizeImg + normalization: height 48, aspect kept, width <= 192, pad 0."""
    from skimage.transform import resize
    h, w = rgb.shape[:2]
    th, tw = hw
    rw = min(tw, max(1, int(np.ceil(th * w / h))))
    r = resize(rgb.astype(np.float32) / 255.0, (th, rw), anti_aliasing=True).astype(np.float32)
    r = (r - 0.5) / 0.5
    out = np.zeros((3, th, tw), np.float32)
    out[:, :, :rw] = r.transpose(2, 0, 1)
    return out


def text_lines(n, split, hw=(48, 192)):
    """n text-line inputs (NCHW, normalized) and their orientation (0: upright, 1: 180 deg).
    Each line appears upright and rotated; `split` ("eval"/"calib") picks disjoint phrases."""
    seed = {"eval": 21, "calib": 22}[split]
    rng = np.random.default_rng(seed)
    fs, words = fonts(), phrases()
    # Disjoint halves of the text: eval reads the first half of the words, calib the second.
    half = len(words) // 2
    pool = words[:half] if split == "eval" else words[half:]
    lines = []
    n_lines = (n + 1) // 2
    n_photo = n_lines // 6  # a sixth from photographs of text
    for strip in _photo_strips(rng, n_photo):
        lines.append(strip)
    while len(lines) < n_lines:
        k = int(rng.integers(2, 7))
        start = int(rng.integers(0, len(pool) - k))
        text = " ".join(pool[start:start + k])[:40]
        if len(text.strip()) < 3:
            continue
        lines.append(_render_line(rng, fs[int(rng.integers(0, len(fs)))], text))
    xs, ys = [], []
    for line in lines:
        xs.append(ppocr_preprocess(line, hw))
        ys.append(0)
        xs.append(ppocr_preprocess(line[::-1, ::-1], hw))
        ys.append(1)
    return np.stack(xs[:n]), np.array(ys[:n])


def distinct_crops(images, n, hw, rng, crop_size, clip=False):
    """n distinct random crops of `images` (taken in turn), each maybe flipped horizontally and
    resized to hw, as float32 HWC arrays: crop_size(h, w, rng) -> (ch, cw) draws each crop's size;
    a crop drawn twice (same image, place, size and flip) is skipped. `clip`: to [0, 1]."""
    from skimage.transform import resize
    out, seen = [], set()
    k = 0
    while len(out) < n:
        i = k % len(images)
        k += 1
        img = images[i]
        h, w = img.shape[:2]
        ch, cw = crop_size(h, w, rng)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        flip = bool(rng.integers(0, 2))
        key = (i, y, x, ch, cw, flip)
        if key in seen:
            continue
        seen.add(key)
        crop = img[y:y + ch, x:x + cw]
        if flip:
            crop = crop[:, ::-1]
        r = resize(crop, hw, anti_aliasing=True)
        out.append((np.clip(r, 0, 1) if clip else r).astype(np.float32))
    return out


def face_images(n, split, hw):
    """n face crops as float [0,1] RGB HWC of size hw: LFW faces (identities 0-69 for eval,
    70-99 for calib) and the astronaut's face, with random crops, shifts, flips, rescaling."""
    from skimage import data
    seed = {"eval": 31, "calib": 32}[split]
    rng = np.random.default_rng(seed)
    lfw = data.lfw_subset()[:100]  # the first 100 are faces, the rest non-faces
    faces = list(lfw[:70] if split == "eval" else lfw[70:])
    faces = [np.stack([f] * 3, axis=-1).astype(np.float32) for f in faces]
    astro = data.astronaut()[30:230, 150:330].astype(np.float32) / 255.0  # her face
    faces.append(astro)

    def size(h, w, rng):  # 80-100% of each side
        s = rng.uniform(0.8, 1.0)
        return max(8, int(h * s)), max(8, int(w * s))
    return distinct_crops(faces, n, hw, rng, size, clip=True)
