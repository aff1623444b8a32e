#!/usr/bin/python3
"""Step 3: train the demo CLIP from scratch on build/train.npz; writes build/train_state.pt (OpenAI key names).

    /usr/bin/python3 weights/demo/tools/train.py

Model: clip_reference.CLIP (the OpenAI transcription the parity fixtures use), ViT image tower and causal
text transformer with the sizes in common.HP, OpenAI's initialization. Loss: CLIP's symmetric cross-entropy
over the batch's image-text similarities scaled by a learned temperature (logit_scale, clamped at ln 100),
with one change for a world of few captions: a text counts as a positive for every image of the batch it
truthfully describes (same shape and colour, and same size/background where the caption says them), and
the targets spread evenly over the positives (multi-positive InfoNCE). Captions are drawn afresh for every
step from the scene attributes. The text tower runs on the first L positions (the longest caption); its
positional table has 77 rows, as the engine's tokenizer emits 77 ids, and rows >= L stay at their
initialization (by the causal mask they never reach the pooled end-of-text state of a shorter text).
Seeded, one thread (common.seed_everything), deterministic algorithms."""
import hashlib
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

import common as c

SEED = 20240607
STEPS = int(os.environ.get("DEMO_STEPS", 3000))   # DEMO_STEPS / DEMO_STATE: shorter runs (determinism checks) and their output
BATCH = 128
LR, WARMUP, WD = 2e-3, 200, 0.05


def build_model(vocab_size):
    hp = c.HP
    model = c.ref.CLIP(hp["embed_dim"], hp["image_size"], hp["vision_layers"], hp["vision_width"], hp["patch_size"],
                       hp["context_length"], vocab_size, hp["text_width"], hp["text_heads"], hp["text_layers"],
                       vision_heads=hp["vision_heads"])
    # OpenAI CLIP.initialize_parameters (the vision tower keeps its constructor init, as in OpenAI's code)
    torch.nn.init.normal_(model.token_embedding.weight, std=0.02)
    torch.nn.init.normal_(model.positional_embedding, std=0.01)
    t = model.transformer
    proj_std = (t.width ** -0.5) * ((2 * t.layers) ** -0.5)
    attn_std = t.width ** -0.5
    fc_std = (2 * t.width) ** -0.5
    for block in t.resblocks:
        torch.nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        torch.nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        torch.nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        torch.nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
    torch.nn.init.normal_(model.text_projection, std=t.width ** -0.5)
    return model


def encode_text_prefix(model, ids):
    """CLIP.encode_text on ids [N, L] with L <= 77: positional rows 0..L-1 and the causal mask's top-left L x L
    block; pools at argmax (our end-of-text id is the largest id, as in OpenAI's vocabulary)."""
    L = ids.shape[1]
    x = model.token_embedding(ids) + model.positional_embedding[:L]
    x = x.permute(1, 0, 2)
    mask = model.transformer.resblocks[0].attn_mask[:L, :L]
    for block in model.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ model.text_projection


class CaptionTable:
    """Every caption the world can produce, tokenized once: key (shape, color, size, bg, size_said, bg_said, photo, period)."""

    def __init__(self, tok):
        self.texts, self.index = [], {}
        for s in range(len(c.SHAPES)):
            for col in range(len(c.COLOR_NAMES)):
                for z in range(len(c.SIZE_NAMES)):
                    for b in range(len(c.BG_NAMES)):
                        for flags in range(16):
                            size_said, bg_said, photo, period = (flags >> 0) & 1, (flags >> 1) & 1, (flags >> 2) & 1, (flags >> 3) & 1
                            words = ("a " + (c.SIZE_NAMES[z] + " " if size_said else "") + c.COLOR_NAMES[col] + " " + c.SHAPES[s]
                                     + (" on a " + c.BG_NAMES[b] + " background" if bg_said else ""))
                            if photo:
                                words = "a photo of " + words
                            if period:
                                words += "."
                            self.index[(s, col, z, b, flags)] = len(self.texts)
                            self.texts.append(words)
        ids = tok.tokenize(self.texts)
        self.length = int((ids != 0).sum(1).max())
        self.ids = torch.from_numpy(ids[:, :self.length])

    def draw(self, attrs, gen):
        """One random caption per scene: (token ids [N, L], size_said [N], bg_said [N])."""
        n = attrs.shape[0]
        flags = torch.randint(0, 16, (n,), generator=gen)
        flags = torch.where(torch.rand(n, generator=gen) < 0.65, flags & ~4, flags)   # "a photo of" 35% of the time
        rows = [self.index[(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(f))] for a, f in zip(attrs, flags)]
        return self.ids[rows], flags & 1, (flags >> 1) & 1


def positives(attrs, size_said, bg_said):
    """[N_img, N_txt] bool: text j truthfully describes image i (text j was drawn for scene j)."""
    a = attrs
    same = lambda k: a[:, None, k] == a[None, :, k]
    return same(0) & same(1) & (same(2) | (size_said[None, :] == 0)) & (same(3) | (bg_said[None, :] == 0))


@torch.no_grad()
def zero_shot_accuracy(model, tok, images, attrs):
    prompts = tok.tokenize([c.TEMPLATE.format(label) for label in c.LABELS])
    L = int((prompts != 0).sum(1).max())
    t = F.normalize(encode_text_prefix(model, torch.from_numpy(prompts[:, :L])), dim=-1)
    i = F.normalize(model.encode_image(images), dim=-1)
    pred = (i @ t.t()).argmax(1)
    truth = attrs[:, 1] * len(c.SHAPES) + attrs[:, 0]   # LABELS = colour-major
    return float((pred == truth).float().mean())


def main():
    c.seed_everything(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tok = c.DemoTokenizer()
    train = np.load(os.path.join(c.BUILD, "train.npz"))
    val = np.load(os.path.join(c.BUILD, "val.npz"))
    images = torch.from_numpy(c.to_tensor(train["crops"]))
    attrs = torch.from_numpy(train["attrs"])
    val_images, val_attrs = torch.from_numpy(c.to_tensor(val["crops"])), torch.from_numpy(val["attrs"])
    table = CaptionTable(tok)
    model = build_model(len(tok.encoder))
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}; captions: {len(table.texts)}, longest {table.length} ids")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / WARMUP if s < WARMUP else 0.5 * (1 + math.cos(math.pi * (s - WARMUP) / (STEPS - WARMUP))))

    n = images.shape[0]
    order = torch.randperm(n, generator=gen)
    pos = 0
    start = time.time()
    for step in range(STEPS):
        if pos + BATCH > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + BATCH]
        pos += BATCH
        a = attrs[idx]
        ids, size_said, bg_said = table.draw(a, gen)
        model.train()
        img = F.normalize(model.encode_image(images[idx]), dim=-1)
        txt = F.normalize(encode_text_prefix(model, ids), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        target = positives(a, size_said, bg_said).float()
        loss_i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
        loss_t = -(target / target.sum(0, keepdim=True) * F.log_softmax(logits, 0)).sum(0).mean()
        loss = (loss_i + loss_t) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 250 == 0 or step == STEPS - 1:
            model.eval()
            acc = zero_shot_accuracy(model, tok, val_images, val_attrs)
            print(f"step {step:5d}  loss {loss.item():.4f}  scale {model.logit_scale.exp().item():6.2f}  "
                  f"val zero-shot {acc:.3f}  {time.time() - start:6.1f} s", flush=True)
    print(f"training time: {time.time() - start:.1f} s")
    out = os.environ.get("DEMO_STATE", os.path.join(c.BUILD, "train_state.pt"))
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(model.state_dict().items()))).hexdigest()
    print(f"wrote {out}; sha256 of the parameters: {digest}")


if __name__ == "__main__":
    main()
