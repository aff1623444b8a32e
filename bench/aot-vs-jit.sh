#!/usr/bin/env bash
# Native AOT against the JIT on ViT-B/32 (issue: the x86-64-v4 build must keep >= 0.9x the JIT's throughput):
# image-tower throughput at batch 8 and 1 (`managedclip bench`, builds interleaved round by round, median of the
# rounds), and start-up to first embedding (a fresh process that loads the checkpoint and embeds one image file;
# wall time to exit, median). Writes bench/aot-vs-jit.md, which run-peers.sh copies into BENCHMARKS.md.
# Usage: bench/aot-vs-jit.sh [DATA_DIR] [ROUNDS]   (DATA_DIR holds vit-b32.safetensors; made if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench/data}"
rounds="${2:-5}"
out="$root/bench/aot-vs-jit.md"
model="$data/vit-b32.safetensors"
image="$root/weights/demo/samples/red_circle.png"

if [ ! -f "$model" ]; then
  dotnet build "$root/bench/ManagedClip.Bench" -c Release -v q -nologo
  dotnet "$root/bench/ManagedClip.Bench/bin/Release/net10.0/ManagedClip.Bench.dll" weights "$data"
fi
dotnet build "$root/src/ManagedClip.Cli" -c Release -v q -nologo
for profile in aot-avx512 aot-portable; do
  dotnet publish "$root/src/ManagedClip.Cli" -p:PublishProfile=$profile -v q -nologo
done

declare -A binary=(
  [jit]="$root/src/ManagedClip.Cli/bin/Release/net10.0/managedclip"
  [aot-avx512]="$root/artifacts/aot-avx512/managedclip"
  [aot-portable]="$root/artifacts/aot-portable/managedclip"
)
builds=(jit aot-avx512 aot-portable)

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
items_per_second() {  # the last JSON line of managedclip bench
  "${binary[$1]}" bench --model "$model" --tower image --batch "$2" --threads 2 --warmup 2 --iterations "$3" --json |
    tail -n 1 | sed -E 's/.*"items_per_second": *([0-9.eE+-]+).*/\1/'
}
first_embedding_seconds() {
  local start end
  start=$(date +%s%N)
  "${binary[$1]}" embed-image --model "$model" --json "$image" > /dev/null
  end=$(date +%s%N)
  awk -v ns=$((end - start)) 'BEGIN { printf "%.3f\n", ns / 1e9 }'
}

declare -A b8 b1 startup
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 0; r < rounds; r++)); do
  for b in "${builds[@]}"; do
    b8[$b]+="$(items_per_second "$b" 8 6)"$'\n'
    b1[$b]+="$(items_per_second "$b" 1 20)"$'\n'
    startup[$b]+="$(first_embedding_seconds "$b")"$'\n'
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "## Native AOT against the JIT (ViT-B/32 image tower, \`bench/aot-vs-jit.sh\`)"
  echo
  echo "Generated on $(date -u '+%Y-%m-%d %H:%M') UTC; $rounds interleaved rounds, medians; 2 threads; load average before/after: $load_before / $load_after."
  echo "Throughput is \`managedclip bench --tower image\` (2 warm-up calls, then 6 calls at batch 8 or 20 at batch 1, median within"
  echo "the round). Start-up to first embedding is the wall time of a fresh \`managedclip embed-image --model vit-b32.safetensors IMAGE\`"
  echo "process: runtime start, loading and packing the 577 MiB fp32 checkpoint, decoding and preprocessing one PNG, one forward pass."
  echo
  echo "| build | SIMD path | batch 8 images/s | vs JIT | batch 1 images/s | vs JIT | start-up to first embedding (s) |"
  echo "|---|---|---|---|---|---|---|"
  jit8=$(median <<< "${b8[jit]}"); jit1=$(median <<< "${b1[jit]}")
  for b in "${builds[@]}"; do
    simd=$("${binary[$b]}" info --json | sed -E 's/.*"simd": *"([^"]*)".*/\1/')
    m8=$(median <<< "${b8[$b]}"); m1=$(median <<< "${b1[$b]}"); s=$(median <<< "${startup[$b]}")
    printf '| %s | %s | %.1f | %.2f× | %.1f | %.2f× | %.2f |\n' "$b" "$simd" "$m8" "$(awk -v a="$m8" -v b="$jit8" 'BEGIN { print a / b }')" "$m1" "$(awk -v a="$m1" -v b="$jit1" 'BEGIN { print a / b }')" "$s"
  done
  echo
  echo "Reproduce: \`bench/aot-vs-jit.sh [DATA_DIR] [ROUNDS]\` (publishes both AOT profiles; needs clang and zlib1g-dev)."
} > "$out"
cat "$out"
