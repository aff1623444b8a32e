#!/usr/bin/python3
"""Writes deterministic photo-like 12-megapixel JPEGs for the decode benchmark (bench/decode/run.sh).

Each photo is one of the reference images in ../shared/reference/images upscaled to 4000x3000 (bicubic), with
film-grain-like noise and a fine texture added so the entropy-coded data is about as dense as a camera photo's
(2-5 MB at quality 90). Written with Pillow (libjpeg-turbo): baseline 4:2:0 quality 90 into bench/data/photos12mp/,
and the same pixels as progressive JPEGs into bench/data/photos12mp-progressive/. Same seed, same bytes.

usage: make_photos.py [N]   (default 8)
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
IMAGES = os.path.normpath(os.path.join(REPO, "..", "shared", "reference", "images"))
OUT = os.path.join(REPO, "bench", "data", "photos12mp")
OUT_PROGRESSIVE = os.path.join(REPO, "bench", "data", "photos12mp-progressive")
WIDTH, HEIGHT = 4000, 3000


def photo(index, sources, rng):
    source = Image.open(os.path.join(IMAGES, sources[index % len(sources)])).convert("RGB")
    # Vary the crop so photos made from the same source differ.
    w, h = source.size
    inset = (index // len(sources)) * 0.08
    box = (int(w * inset), int(h * inset / 2), w - int(w * inset / 2), h - int(h * inset))
    big = np.asarray(source.crop(box).resize((WIDTH, HEIGHT), Image.BICUBIC), dtype=np.float32)
    # Sensor-like noise (per channel, some of it shared so the chroma is not pure noise) and a fine luminance texture.
    grain = rng.normal(0.0, 6.0, size=(HEIGHT, WIDTH, 1)).astype(np.float32)
    colour = rng.normal(0.0, 3.0, size=(HEIGHT, WIDTH, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    texture = (4.0 * np.sin(xx * 0.9 + yy * 0.31) * np.sin(yy * 0.7 - xx * 0.13))[..., None]
    return Image.fromarray(np.clip(big + grain + colour + texture, 0, 255).astype(np.uint8), "RGB")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(OUT_PROGRESSIVE, exist_ok=True)
    sources = sorted(f for f in os.listdir(IMAGES) if f.endswith((".png", ".jpg")))
    rng = np.random.default_rng(14)
    for i in range(count):
        name = f"photo{i:02d}.jpg"
        image = photo(i, sources, rng)
        image.save(os.path.join(OUT, name), quality=90, subsampling=2)
        image.save(os.path.join(OUT_PROGRESSIVE, name), quality=90, subsampling=2, progressive=True)
        size = os.path.getsize(os.path.join(OUT, name))
        print(f"{name}: {size / 1e6:.2f} MB baseline, {os.path.getsize(os.path.join(OUT_PROGRESSIVE, name)) / 1e6:.2f} MB progressive")


if __name__ == "__main__":
    main()
