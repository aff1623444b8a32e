#!/usr/bin/python3
"""Times Pillow's Image.open(f).convert("RGB") (libjpeg-turbo) on the JPEGs of a folder: open and decode from bytes
already in memory, one thread, median over files x reps (bench/decode/run.sh runs it beside the managed decoder).

usage: pillow_decode.py FOLDER [REPS]   (default 5)
"""
import hashlib
import io
import os
import statistics
import sys
import time

from PIL import Image


def main():
    folder = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))
    data = [open(f, "rb").read() for f in files]
    # Pillow's bytes, each file's SHA-256 hashed in turn, for run.sh to compare with the managed decoder's.
    print("sha256 pillow", hashlib.sha256(b"".join(hashlib.sha256(Image.open(io.BytesIO(d)).convert("RGB").tobytes()).digest() for d in data)).hexdigest())
    times = []
    for _ in range(reps):
        for d in data:
            t0 = time.perf_counter()
            Image.open(io.BytesIO(d)).convert("RGB")
            times.append((time.perf_counter() - t0) * 1000)
    print(f"pillow     {statistics.median(times):8.1f} ms/image (median of {len(times)}: {len(files)} files x {reps})")


if __name__ == "__main__":
    main()
