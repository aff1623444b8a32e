#!/usr/bin/env bash
# End to end on 12-megapixel photos (issue 14): `managedclip embed-image` with a full-size ViT-B/32 at --threads 2 on
# the JPEGs of bench/data/photos12mp (make_photos.py), decoded exactly (Pillow's pixels) and with --fast-decode, and
# the same images preprocessed into one [N,3,224,224] .npy (the model alone). Reports images/s over the whole process
# (model load included) and the marginal rate (N more images: 2N-image run minus N-image run), process CPU time
# (user+sys, GNU time) over wall time, and peak RSS. Runs are interleaved round by round; medians of the rounds.
# Usage: bench/decode/e2e.sh [ROUNDS] [N]   (defaults 3 and 32)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-3}"
n="${2:-32}"
data="$root/bench/data"
photos="$data/photos12mp"
model="$data/weights/vit-b32.safetensors"
cli="$root/src/ManagedClip.Cli/bin/Release/net10.0/managedclip"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

dotnet build "$root/src/ManagedClip.Cli" -c Release -v q -nologo >/dev/null
[ -d "$photos" ] || /usr/bin/python3 "$root/bench/decode/make_photos.py"
if [ ! -f "$model" ]; then
  dotnet build "$root/bench/ManagedClip.Bench" -c Release -v q -nologo >/dev/null
  dotnet "$root/bench/ManagedClip.Bench/bin/Release/net10.0/ManagedClip.Bench.dll" weights "$data/weights"
fi

mapfile -t files < <(ls "$photos"/*.jpg | sort)
inputs() { local count=$1; for ((i = 0; i < count; i++)); do echo "${files[i % ${#files[@]}]}"; done; }
mapfile -t set1 < <(inputs "$n")
mapfile -t set2 < <(inputs $((2 * n)))

# The .npy batches: each photo preprocessed once by the CLI, then stacked (numpy).
for f in "${files[@]}"; do "$cli" preprocess --size 224 "$f" --out "$work/$(basename "$f" .jpg).npy" >/dev/null; done
/usr/bin/python3 - "$work" "$n" <<'PY'
import sys, glob, numpy as np
work, n = sys.argv[1], int(sys.argv[2])
tensors = [np.load(f) for f in sorted(glob.glob(f"{work}/photo*.npy"))]
for count, name in ((n, "batch1"), (2 * n, "batch2")):
    np.save(f"{work}/{name}.npy", np.stack([tensors[i % len(tensors)] for i in range(count)]).astype(np.float32))
PY

run() { # name, then the command; appends "name wall user sys peak-RSS-KiB" to results
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null
  read -r wall user sys rss < "$work/time"
  echo "$name $wall $user $sys $rss" >> "$work/results"
}
for ((r = 1; r <= rounds; r++)); do
  run exact1 "$cli" embed-image --model "$model" --threads 2 "${set1[@]}"
  run exact2 "$cli" embed-image --model "$model" --threads 2 "${set2[@]}"
  run fast1 "$cli" embed-image --model "$model" --threads 2 --fast-decode "${set1[@]}"
  run fast2 "$cli" embed-image --model "$model" --threads 2 --fast-decode "${set2[@]}"
  run npy1 "$cli" embed-image --model "$model" --threads 2 "$work/batch1.npy"
  run npy2 "$cli" embed-image --model "$model" --threads 2 "$work/batch2.npy"
done

/usr/bin/python3 - "$work/results" "$n" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
med = lambda name, col: st.median(float(r[col]) + (float(r[3]) if col == 2 else 0) for r in rows if r[0] == name)
print(f"| input ({n} / {2*n} images, ViT-B/32, --threads 2) | images/s, whole process | images/s, marginal | CPU time / wall | peak RSS |")
print("|---|---|---|---|---|")
for key, label in (("exact", "12 MP JPEG, exact decode"), ("fast", "12 MP JPEG, --fast-decode"), ("npy", "same images as one .npy batch")):
    w1, w2 = med(key + "1", 1), med(key + "2", 1)
    c2, rss = med(key + "2", 2), med(key + "2", 4)
    print(f"| {label} | {2*n / w2:.1f} | {n / (w2 - w1):.1f} | {c2 / w2:.2f} | {rss / 1024:.0f} MiB |")
PY
