#!/usr/bin/python3
"""Step 2: learn a byte-level BPE vocabulary from build/captions.txt and write vocab.json + merges.txt in
OpenAI's / Hugging Face's format (spec section 9.2), so ManagedClip's tokenizer reads them unchanged.

    /usr/bin/python3 weights/demo/tools/learn_bpe.py

Same text pipeline as CLIP: clean + whitespace collapse + lower-case, the CLIP pre-tokenizer regex, UTF-8
bytes mapped through bytes_to_unicode, '</w>' on the last symbol of each word. Then the classic BPE loop:
merge the most frequent adjacent pair (ties: the lexicographically smallest pair), until no pair occurs
twice or MAX_MERGES is reached. Vocabulary: ids 0-255 the byte symbols in bytes_to_unicode order, 256-511
the same with '</w>', one token per merge in merge order, then <|startoftext|>, <|endoftext|>."""
import collections
import json
import os

import regex

import common as c

MAX_MERGES = 2000
PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)


def merge_word(word, a, b):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def learn(lines):
    byte_encoder = c.ref.bytes_to_unicode()
    counts = collections.Counter()
    for line in lines:
        text = c.ref.whitespace_clean(c.ref.basic_clean(line)).lower()
        for token in regex.findall(PAT, text):
            symbols = [byte_encoder[b] for b in token.encode("utf-8")]
            symbols[-1] += "</w>"
            counts[tuple(symbols)] += 1
    words = sorted(counts.items())
    merges = []
    while len(merges) < MAX_MERGES:
        pairs = collections.Counter()
        for word, n in words:
            for p in zip(word, word[1:]):
                pairs[p] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        words = [(merge_word(w, *best), n) for w, n in words]
    return merges


def main():
    with open(os.path.join(c.BUILD, "captions.txt"), encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n") if l]
    merges = learn(lines)
    symbols = list(c.ref.bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab), "a merge produced a token twice"
    with open(os.path.join(c.DEMO, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(c.DEMO, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = c.DemoTokenizer()
    words = sorted({w for l in lines for w in regex.findall(PAT, l.lower())})
    for w in words:
        assert len(tok.encode(w)) == 1, (w, tok.encode(w))
    print(f"{len(merges)} merges, vocabulary {len(vocab)}; every one of the {len(words)} corpus words is one token")
    print("example:", lines[0], "->", tok.tokenize([lines[0]])[0][:16].tolist())


if __name__ == "__main__":
    main()
