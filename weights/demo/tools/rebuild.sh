#!/bin/sh
# Rebuilds weights/demo from nothing: dataset, vocabulary, training, export, held-out set and PyTorch fixture.
# Needs Debian's python3-torch (1.13), python3-numpy, python3-pil, python3-regex; run from anywhere.
set -e
cd "$(dirname "$0")"
PY=/usr/bin/python3
for step in render_dataset learn_bpe train export make_heldout; do
    echo "== $step"
    /usr/bin/time -f "   $step: %e s" $PY $step.py
done
sha256sum ../model.safetensors ../vocab.json ../merges.txt
