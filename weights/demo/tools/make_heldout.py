#!/usr/bin/python3
"""Step 5: render the held-out test set and the quick-start samples, write labels.txt, and store the PyTorch
model's zero-shot predictions on exactly those files as the fixture the C# test compares the engine with.

    /usr/bin/python3 weights/demo/tools/make_heldout.py

heldout/NNN.png: 5 images per label (30 labels), random size/background/placement, from a seed the
training and validation sets do not use. samples/*.png: one image per sample, named by its label.
heldout/predictions.json: the prompts' token ids, and per image its label and the PyTorch model's logits,
top-1 label and probability. The PyTorch model is the exported folder loaded back with clip_reference.load_hf
(full 77-position text context, as the engine runs it), images read back from the PNG files and preprocessed
with the HF pipeline in PIL (common.preprocess_u8 / to_tensor)."""
import json
import os
import random
import sys

import numpy as np
import torch
from PIL import Image

import common as c

HELDOUT_SEED, SAMPLES_SEED = 4242, 777
PER_LABEL = 5
SAMPLES = [("red", "circle", "large", "white", (128, 96)), ("blue", "square", "large", "gray", (96, 128)),
           ("green", "triangle", "small", "black", (120, 96)), ("yellow", "star", "large", "black", (96, 96)),
           ("purple", "cross", "large", "white", (128, 96)), ("orange", "star", "large", "gray", (96, 120))]


def save_png(arr, path):
    Image.fromarray(arr).save(path, optimize=True)


def classify(model, tok, paths):
    prompts = tok.tokenize([c.TEMPLATE.format(label) for label in c.LABELS])
    with torch.no_grad():
        t = model.encode_text(torch.from_numpy(prompts))
        t = t / t.norm(dim=1, keepdim=True)
        x = torch.from_numpy(c.to_tensor(np.stack([c.preprocess_u8(Image.open(p)) for p in paths])))
        i = model.encode_image(x)
        i = i / i.norm(dim=1, keepdim=True)
        logits = model.logit_scale.exp() * i @ t.t()
    return prompts, logits.numpy().astype(np.float64), float(model.logit_scale)


def main():
    heldout, samples = os.path.join(c.DEMO, "heldout"), os.path.join(c.DEMO, "samples")
    for d in (heldout, samples):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".png"):
                os.remove(os.path.join(d, f))
    with open(os.path.join(c.DEMO, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(c.LABELS) + "\n")

    rng = random.Random(HELDOUT_SEED)
    items = []
    for k in range(PER_LABEL):
        for label in c.LABELS:
            color, shape = label.split()
            spec = c.sample_spec(rng, shape=shape, color=color)
            name = f"{len(items):03d}.png"
            save_png(c.render(spec), os.path.join(heldout, name))
            items.append(dict(file=name, label=label, size=spec["size"], background=spec["bg"], width=spec["w"], height=spec["h"]))
    rng = random.Random(SAMPLES_SEED)
    sample_items = []
    for color, shape, size, bg, dims in SAMPLES:
        spec = c.sample_spec(rng, shape=shape, color=color, size=size, bg=bg, dims=dims)
        name = f"{color}_{shape}.png"
        save_png(c.render(spec), os.path.join(samples, name))
        sample_items.append(dict(file=name, label=f"{color} {shape}"))

    c.seed_everything(0)
    model = c.ref.load_hf(c.DEMO)
    tok = c.DemoTokenizer()
    report = {}
    for name, folder, group in (("heldout", heldout, items), ("samples", samples, sample_items)):
        prompts, logits, scale = classify(model, tok, [os.path.join(folder, it["file"]) for it in group])
        for it, row in zip(group, logits):
            p = np.exp(row - row.max())
            p /= p.sum()
            it["pytorch_top1"] = c.LABELS[int(row.argmax())]
            it["pytorch_prob"] = round(float(p.max()), 6)
            it["pytorch_logits"] = [round(float(v), 5) for v in row]
        correct = sum(it["pytorch_top1"] == it["label"] for it in group)
        report[name] = correct / len(group)
        print(f"{name}: PyTorch zero-shot top-1 {correct}/{len(group)} = {correct / len(group):.3f}")
        for it in group:
            if it["pytorch_top1"] != it["label"]:
                print(f"  {it['file']}: {it['label']} -> {it['pytorch_top1']} ({it['pytorch_prob']:.3f})")
    fixture = dict(
        template=c.TEMPLATE, labels=c.LABELS, prompt_ids=[[int(v) for v in row[:list(row).index(tok.eot) + 1]] for row in prompts],
        logit_scale=scale, pytorch_accuracy=report["heldout"], images=items, samples=sample_items,
    )
    with open(os.path.join(heldout, "predictions.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    if report["heldout"] < 0.9 or report["samples"] < 1.0:
        sys.exit("held-out accuracy below 90% or a sample misclassified")


if __name__ == "__main__":
    main()
