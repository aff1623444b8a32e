#!/usr/bin/python3
"""Step 1: render the synthetic training and validation sets (seeded) into build/.

    /usr/bin/python3 weights/demo/tools/render_dataset.py

build/train.npz: u8 [N, 48, 48, 3] model-input crops (the HF preprocessing of each rendered image, see
common.preprocess_u8), the scene attributes (shape, color, size, bg indices), and one caption per image;
build/val.npz: the same for a separate validation set (used only to print progress while training);
build/captions.txt: the training captions, one a line (the corpus learn_bpe.py learns from).
The held-out test set is rendered by make_heldout.py with yet another seed."""
import os
import random
import time

import numpy as np
from PIL import Image

import common as c

TRAIN_SEED, VAL_SEED = 1234, 5678
N_TRAIN, N_VAL = 20000, 600


def render_set(seed, n):
    rng = random.Random(seed)
    crops = np.empty((n, c.IMAGE_SIZE, c.IMAGE_SIZE, 3), np.uint8)
    attrs = np.empty((n, 4), np.int64)
    captions = []
    for i in range(n):
        spec = c.sample_spec(rng)
        crops[i] = c.preprocess_u8(Image.fromarray(c.render(spec)))
        attrs[i] = (c.SHAPES.index(spec["shape"]), c.COLOR_NAMES.index(spec["color"]),
                    c.SIZE_NAMES.index(spec["size"]), c.BG_NAMES.index(spec["bg"]))
        captions.append(c.caption(spec, rng)[0])
    return crops, attrs, captions


def main():
    os.makedirs(c.BUILD, exist_ok=True)
    t = time.time()
    for name, seed, n in (("train", TRAIN_SEED, N_TRAIN), ("val", VAL_SEED, N_VAL)):
        crops, attrs, captions = render_set(seed, n)
        np.savez(os.path.join(c.BUILD, name + ".npz"), crops=crops, attrs=attrs, captions=np.array(captions))
        if name == "train":
            with open(os.path.join(c.BUILD, "captions.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(captions) + "\n")
        print(f"{name}: {n} images, {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()
