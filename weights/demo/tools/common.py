"""Shared pieces of the demo-model scripts: the synthetic world (shapes x colours x sizes x backgrounds), a
numpy rasterizer, captions, the Hugging Face preprocessing pipeline, the BPE tokenizer over our vocabulary,
the model hyper-parameters, and paths. Run every script with Debian's interpreter: /usr/bin/python3."""
import json
import math
import os
import random
import sys

import numpy as np
from PIL import Image

TOOLS = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.dirname(TOOLS)                       # weights/demo: the artifacts
REPO = os.path.dirname(os.path.dirname(DEMO))
BUILD = os.path.join(DEMO, "build")                 # intermediate outputs (git-ignored)
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import clip_reference as ref  # noqa: E402  (OpenAI model transcription, safetensors writer, HF loader, tokenizer)

# ------------------------------------------------------------------------------------------ the world
SHAPES = ["circle", "square", "triangle", "star", "cross"]
COLORS = {  # base RGB, jittered per image
    "red": (215, 35, 35), "green": (40, 165, 60), "blue": (40, 75, 215),
    "yellow": (240, 215, 40), "purple": (135, 55, 175), "orange": (245, 135, 25),
}
SIZES = {"small": (0.18, 0.23), "large": (0.30, 0.38)}          # radius as a fraction of the shorter side
BACKGROUNDS = {"white": (245, 245, 245), "black": (18, 18, 18), "gray": (128, 128, 128)}
COLOR_NAMES = list(COLORS)
SIZE_NAMES = list(SIZES)
BG_NAMES = list(BACKGROUNDS)

# Zero-shot classes: colour x shape (30). The quick start and the test use this template.
LABELS = [f"{c} {s}" for c in COLOR_NAMES for s in SHAPES]
TEMPLATE = "a photo of a {}."

# Model input: HF CLIPImageProcessor (resize shorter side bicubic, center crop, rescale, normalize).
IMAGE_SIZE = 32
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]

# Hyper-parameters of the model (see train.py).
HP = dict(
    embed_dim=64, image_size=IMAGE_SIZE, patch_size=8,
    vision_width=64, vision_layers=3, vision_heads=4,
    text_width=64, text_layers=2, text_heads=4, context_length=77,
)


def unit_polygon(shape):
    """Vertices (x right, y down) of a shape of 'radius' 1 centred at 0, or None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if shape == "triangle":  # equilateral, apex up, circumradius 1.1, centroid lowered a little
        return [(1.1 * math.cos(a), 1.1 * math.sin(a) + 0.12) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":  # five points, inner radius 0.42
        return [((1.05 if k % 2 == 0 else 0.44) * math.cos(-math.pi / 2 + k * math.pi / 5),
                 (1.05 if k % 2 == 0 else 0.44) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    if shape == "cross":  # plus sign, arms of half-width 0.3
        a, w = 0.95, 0.3
        return [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)]
    raise ValueError(shape)


def sample_spec(rng, shape=None, color=None, size=None, bg=None, dims=None):
    """A random scene; attributes not given are drawn; dims = (w, h) fixes the image size. rng: random.Random."""
    spec = dict(
        shape=shape or rng.choice(SHAPES), color=color or rng.choice(COLOR_NAMES),
        size=size or rng.choice(SIZE_NAMES), bg=bg or rng.choice(BG_NAMES),
    )
    if dims is None:
        short = rng.randint(48, 96)
        long_ = int(short * rng.uniform(1.0, 1.7))
        w, h = (short, long_) if rng.random() < 0.5 else (long_, short)
    else:
        w, h = dims
        short = min(w, h)
    lo, hi = SIZES[spec["size"]]
    r = short * rng.uniform(lo, hi)
    # keep the shape inside the central square the center crop keeps
    slack = max(0.0, short / 2 - 1.15 * r - 1)
    cx = w / 2 + rng.uniform(-slack, slack)
    cy = h / 2 + rng.uniform(-slack, slack)
    fg = tuple(min(255, max(0, v + rng.randint(-18, 18))) for v in COLORS[spec["color"]])
    bgc = tuple(min(255, max(0, v + rng.randint(-10, 10))) for v in BACKGROUNDS[spec["bg"]])
    spec.update(w=w, h=h, cx=cx, cy=cy, r=r, angle=rng.uniform(-20, 20), fg=fg, bg_rgb=bgc)
    return spec


def render(spec, ss=4):
    """uint8 [h, w, 3]: the shape over the background, anti-aliased by ss x ss supersampling."""
    w, h = spec["w"], spec["h"]
    img = np.empty((h, w, 3), np.float64)
    img[:] = spec["bg_rgb"]
    cx, cy, r = spec["cx"], spec["cy"], spec["r"]
    x0, x1 = max(0, int(cx - 1.2 * r) - 1), min(w, int(cx + 1.2 * r) + 2)
    y0, y1 = max(0, int(cy - 1.2 * r) - 1), min(h, int(cy + 1.2 * r) + 2)
    offs = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(x0, x1)[:, None] + offs[None, :]).reshape(-1)
    ys = (np.arange(y0, y1)[:, None] + offs[None, :]).reshape(-1)
    X, Y = np.meshgrid(xs, ys)                           # [(y1-y0)*ss, (x1-x0)*ss]
    # to the shape's frame: translate, rotate by -angle, scale by 1/r
    t = math.radians(spec["angle"])
    dx, dy = X - cx, Y - cy
    u = (dx * math.cos(t) + dy * math.sin(t)) / r
    v = (-dx * math.sin(t) + dy * math.cos(t)) / r
    poly = unit_polygon(spec["shape"])
    if poly is None:
        inside = u * u + v * v <= 1.0
    else:
        inside = np.zeros(u.shape, bool)
        n = len(poly)
        for k in range(n):                               # even-odd rule
            (ax, ay), (bx, by) = poly[k], poly[(k + 1) % n]
            crosses = (ay > v) != (by > v)
            with np.errstate(divide="ignore", invalid="ignore"):
                xint = ax + (v - ay) * (bx - ax) / (by - ay)
            inside ^= crosses & (u < xint)
    cover = inside.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))[..., None]
    fg = np.array(spec["fg"], np.float64)
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - cover) + fg * cover
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def caption(spec, rng):
    """A caption mentioning colour and shape always, size and background sometimes. Returns (text, size_said, bg_said)."""
    size_said = rng.random() < 0.5
    bg_said = rng.random() < 0.5
    words = ("a " + (spec["size"] + " " if size_said else "") + spec["color"] + " " + spec["shape"]
             + (" on a " + spec["bg"] + " background" if bg_said else ""))
    if rng.random() < 0.35:
        words = "a photo of " + words
    if rng.random() < 0.5:
        words += "."
    return words, size_said, bg_said


# ------------------------------------------------------------------------------------------ preprocessing
def preprocess_u8(img):
    """PIL image -> uint8 [S, S, 3]: HF CLIPImageProcessor order (convert to RGB, resize the shorter side to S
    with Pillow bicubic, longer side floor(S*long/short), center crop with floor offsets)."""
    img = img.convert("RGB")
    w, h = img.size
    s = IMAGE_SIZE
    nw, nh = (s, s * h // w) if w <= h else (s * w // h, s)
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - s) // 2, (nh - s) // 2
    return np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.uint8)


def to_tensor(u8):
    """uint8 [N, S, S, 3] -> float32 [N, 3, S, S]: (float32)(v * (1/255) in double), then (x - mean) / std in float32."""
    x = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------------------------ tokenizer
class DemoTokenizer(ref.SimpleTokenizer):
    """OpenAI's SimpleTokenizer (clip_reference transcription) over a Hugging Face vocab.json + merges.txt."""

    def __init__(self, folder=DEMO):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")
        assert lines[0].startswith("#version")
        merges = [tuple(m.split()) for m in lines[1:len(self.encoder) - 514 + 1]]
        self.byte_encoder = ref.bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {'<|startoftext|>': '<|startoftext|>', '<|endoftext|>': '<|endoftext|>'}
        import regex
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
        self.sot = self.encoder["<|startoftext|>"]
        self.eot = self.encoder["<|endoftext|>"]

    def tokenize(self, texts, context_length=77):
        """clip.tokenize(texts, context_length, truncate=True) over this vocabulary: int64 [N, context_length]."""
        return ref.tokenize(texts, context_length, truncate=True, tokenizer=self).numpy()


def seed_everything(seed):
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)   # one thread: see README (2 threads on a busy 2-core machine ran ~10x slower)
    torch.use_deterministic_algorithms(True)
