"""Peer side of the ManagedClip benchmark (issue 8), run with Debian's /usr/bin/python3 (python3-torch 1.13).

  export_onnx.py export DIR      DIR/{vit-b32,rn50}.safetensors -> DIR/{vit-b32,rn50}.{image,text}.onnx
                                 (opset 14, dynamic batch; the OpenAI-model transcription in tests/fixtures/clip_reference.py)
  export_onnx.py time DIR OUT    PyTorch throughput on the same weights, 2 threads, batch 8 and 1, interleaved rounds;
                                 writes OUT (JSON) and prints the OpenBLAS kernel in use.

Run `time` with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (bench/run-peers.sh does), so OpenBLAS picks its own kernel.
"""
import ctypes
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures"))
import clip_reference  # noqa: E402
import torch  # noqa: E402

MODELS = {"vit-b32": "vit-b32.safetensors", "rn50": "rn50.safetensors"}
CONTEXT = 77


class ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixels):
        return self.clip.encode_image(pixels)


class TextTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, ids):
        return self.clip.encode_text(ids)


def synthetic_ids(batch, tokens=CONTEXT):
    """Full-context prompts: start token, seeded word ids, end token last (the worst case every runtime without an EOT shortcut pays)."""
    g = torch.Generator().manual_seed(5678)
    ids = torch.zeros(batch, CONTEXT, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:tokens - 1] = torch.randint(1, 49405, (batch, tokens - 2), generator=g)
    ids[:, tokens - 1] = 49407
    return ids


def load(folder, name):
    return clip_reference.load_openai(os.path.join(folder, MODELS[name])).float().eval()


def export(folder):
    for name in MODELS:
        model = load(folder, name)
        size = model.visual.input_resolution
        for tower, module, example, input_name in [
            ("image", ImageTower(model), torch.randn(2, 3, size, size), "pixels"),
            ("text", TextTower(model), synthetic_ids(2), "ids"),
        ]:
            path = os.path.join(folder, f"{name}.{tower}.onnx")
            if os.path.exists(path):
                print(f"{path} exists")
                continue
            with torch.no_grad():
                torch.onnx.export(module, (example,), path + ".tmp", opset_version=14, input_names=[input_name],
                                  output_names=["features"], dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
                                  do_constant_folding=True)
            os.replace(path + ".tmp", path)
            print(f"{path}: {os.path.getsize(path) / 2**20:.0f} MiB")


def openblas_core():
    """The OpenBLAS kernel the process loaded (openblas_get_corename), found through /proc/self/maps."""
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
            handle.openblas_get_corename.restype = ctypes.c_char_p
            config = ""
            if hasattr(handle, "openblas_get_config"):
                handle.openblas_get_config.restype = ctypes.c_char_p
                config = handle.openblas_get_config().decode()
            return {"library": lib, "corename": handle.openblas_get_corename().decode(), "config": config}
        except (OSError, AttributeError):
            continue
    return {"library": None, "corename": "not loaded", "config": ""}


def time_peer(folder, out, threads=2, rounds=1, seconds=3.0):
    torch.set_num_threads(threads)
    # Touch a BLAS routine first so the library is loaded before we ask which kernel it picked.
    torch.randn(64, 64) @ torch.randn(64, 64)
    blas = openblas_core()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; OpenBLAS {blas['corename']} ({blas['library']}; {blas['config']})")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    results = []
    for name in MODELS:
        model = load(folder, name)
        size = model.visual.input_resolution
        cases = []
        for batch in (8, 1):
            pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1234))
            cases.append(("image", batch, lambda p=pixels: model.encode_image(p)))
            if name == "vit-b32":
                ids = synthetic_ids(batch)
                cases.append(("text", batch, lambda i=ids: model.encode_text(i)))
        samples = {(t, b): [] for t, b, _ in cases}
        with torch.no_grad():
            for _, _, call in cases:
                call()  # warm-up
            for _ in range(rounds):
                for tower, batch, call in cases:
                    calls, start = 0, time.perf_counter()
                    while True:
                        t0 = time.perf_counter()
                        call()
                        samples[(tower, batch)].append(time.perf_counter() - t0)
                        calls += 1
                        if time.perf_counter() - start > seconds / rounds and calls >= 1:
                            break
        for (tower, batch), times in samples.items():
            median = statistics.median(times)
            r = {"runtime": "pytorch", "model": name, "tower": tower, "batch": batch, "threads": threads,
                 "items_per_second": batch / median, "ms_per_item": 1000 * median / batch, "calls": len(times),
                 "seconds": times}
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "seconds"}))
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "openblas": blas, "results": results,
                   "loadavg": open("/proc/loadavg").read().split()[:3]}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "export":
        export(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "time":
        time_peer(sys.argv[2], sys.argv[3], rounds=int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    else:
        sys.exit(__doc__)
