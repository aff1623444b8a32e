#!/usr/bin/python3
"""What --fast-decode (Pillow's draft: JPEG decoded at 1/2, 1/4 or 1/8 before the resize) does to the outputs.

1. Zero-shot on the demo model (weights/demo, 32 px input): its 150 held-out images (weights/demo/heldout, labels in
   predictions.json), upscaled 16x with Pillow bicubic and saved as quality-90 4:2:0 JPEGs (draft then picks 1/8),
   classified among the 30 labels exactly and with --fast-decode: top-1 agreement, each one's accuracy, and the
   largest change of any label's probability.
2. Features of a full-size ViT-B/32 (seeded weights, bench/data/weights) on the 12-megapixel photos of
   bench/data/photos12mp (draft 1/8 at 224): relative error |fast - exact| / |exact| and cosine similarity.
Usage: /usr/bin/python3 bench/decode/fast_decode_effect.py   (after dotnet build src/ManagedClip.Cli -c Release)
"""
import glob
import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLI = os.path.join(ROOT, "src", "ManagedClip.Cli", "bin", "Release", "net10.0", "managedclip")
DEMO = os.path.join(ROOT, "weights", "demo")


def run(*args):
    result = subprocess.run([CLI, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"managedclip {' '.join(args[:3])} ... failed: {result.stderr.strip()}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def zero_shot():
    truth = {entry["file"]: entry["label"] for entry in json.load(open(os.path.join(DEMO, "heldout", "predictions.json")))["images"]}
    with tempfile.TemporaryDirectory() as work:
        files, names = [], []
        for png in sorted(glob.glob(os.path.join(DEMO, "heldout", "*.png"))):
            im = Image.open(png).convert("RGB")
            path = os.path.join(work, os.path.basename(png).replace(".png", ".jpg"))
            im.resize((im.width * 16, im.height * 16), Image.Resampling.BICUBIC).save(path, quality=90, subsampling=2)
            files.append(path)
            names.append(os.path.basename(png))
        common = ["classify", "--model", DEMO, "--labels-file", os.path.join(DEMO, "labels.txt"),
                  "--template", "a photo of a {}.", "--top", "30", "--json"]
        exact = run(*common, *files)
        fast = run(*common, "--fast-decode", *files)
    top = lambda r: r["predictions"][0]["label"]
    agree = sum(top(e) == top(f) for e, f in zip(exact, fast))
    deltas = []
    for e, f in zip(exact, fast):
        pe = {p["label"]: p["probability"] for p in e["predictions"]}
        pf = {p["label"]: p["probability"] for p in f["predictions"]}
        deltas.append(max(abs(pe[k] - pf[k]) for k in pe))
    right = lambda results: sum(top(r) == truth[n] for r, n in zip(results, names))
    print(f"demo model, {len(files)} held-out images as 16x upscaled JPEGs (draft 1/8 at 32 px): top-1 agreement "
          f"{agree}/{len(files)}; accuracy exact {right(exact)}/{len(files)}, fast {right(fast)}/{len(files)}; "
          f"largest probability change per image: worst {max(deltas):.4f}, mean {np.mean(deltas):.4f}")


def vit_features():
    photos = sorted(glob.glob(os.path.join(ROOT, "bench", "data", "photos12mp", "*.jpg")))
    model = os.path.join(ROOT, "bench", "data", "weights", "vit-b32.safetensors")
    if not photos or not os.path.exists(model):
        print("ViT-B/32: bench/data/photos12mp or bench/data/weights missing (bench/decode/make_photos.py, ManagedClip.Bench weights)")
        return
    common = ["embed-image", "--model", model, "--raw", "--json", "--threads", "2"]
    exact = np.array([r["embedding"] for r in run(*common, *photos)], dtype=np.float64)
    fast = np.array([r["embedding"] for r in run(*common, "--fast-decode", *photos)], dtype=np.float64)
    errors = np.linalg.norm(fast - exact, axis=1) / np.linalg.norm(exact, axis=1)
    cosines = np.sum(fast * exact, axis=1) / np.linalg.norm(fast, axis=1) / np.linalg.norm(exact, axis=1)
    print(f"ViT-B/32 (seeded weights), {len(photos)} 12 MP photos (draft 1/8 at 224): relative error of the features "
          f"worst {errors.max():.3e}, median {np.median(errors):.3e}; cosine similarity worst {cosines.min():.5f}")


if __name__ == "__main__":
    zero_shot()
    vit_features()
