#!/usr/bin/env bash
# The GPU backend on a device, in one go (issue 16; BENCHMARKS.md "GPU"):
#   1. correctness: features on the device against the CPU's, seeded full-size ViT-B/32 and RN50 (images and texts);
#   2. images/s (texts/s) for ViT-B/32, RN50 and the text tower at batch 1, 64 and 256 (managedclip bench --device);
#   3. the GEMM's TFLOP/s on the ViT-B/32 shapes against the FP32 peak (H200: 67 TFLOP/s; PEAK_TFLOPS to change it);
#   4. end to end from JPEG files: embed-image --device over the 12 MP photos of bench/decode (if made).
# Usage: bench/gpu.sh [cuda|opencl|ilgpu-cpu] [--quick]
#   ilgpu-cpu runs the same kernels on CPU threads (slowly): with --quick it only checks that the script works, on the tiny
#   reference models, without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
device="${1:-cuda}" quick="${2:-}"
data=bench/data/weights
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build bench/ManagedClip.Bench -c Release -v q -nologo >/dev/null
dotnet build src/ManagedClip.Cli -c Release -v q -nologo >/dev/null
bench() { dotnet bench/ManagedClip.Bench/bin/Release/net10.0/ManagedClip.Bench.dll "$@"; }
cli=src/ManagedClip.Cli/bin/Release/net10.0/managedclip

if [ "$quick" = "--quick" ]; then
  models=(../shared/reference/models/vit-tiny-a/model.safetensors ../shared/reference/models/rn-tiny-a/model.safetensors)
  batches=(1 2); iterations=1; parity=2
else
  mkdir -p "$data"; bench weights "$data"
  models=("$data/vit-b32.safetensors" "$data/rn50.safetensors")
  batches=(1 64 256); iterations=10; parity=8
fi
"$cli" info

echo "== 1. correctness against the CPU"
for model in "${models[@]}"; do bench gpu-parity "$model" "$device" "$parity"; done

echo "== 2. throughput"
for model in "${models[@]}"; do
  for tower in image text; do
    [ "$tower" = text ] && [ "$model" = "${models[1]}" ] && continue   # one text tower is enough (RN50's is ViT-B/32's shape)
    for batch in "${batches[@]}"; do
      "$cli" bench --model "$model" --tower "$tower" --batch "$batch" --iterations "$iterations" --warmup 1 --device "$device" | grep -E "^(tower|throughput)" || true
    done
  done
done

echo "== 3. GEMM"
bench gpu-gemm "$device" "${PEAK_TFLOPS:-67}" "$([ "$quick" = "--quick" ] && echo 2 || echo 20)"

echo "== 4. end to end from JPEG"
photos=bench/data/photos12mp
if [ "$quick" != "--quick" ] && ls "$photos"/*.jpg >/dev/null 2>&1; then
  count=$(ls "$photos"/*.jpg | wc -l)
  start=$(date +%s.%N)
  "$cli" embed-image --model "${models[0]}" --device "$device" "$photos"/*.jpg >/dev/null
  end=$(date +%s.%N)
  echo "embed-image ViT-B/32 --device $device: $count photos in $(echo "$end - $start" | bc) s, whole process"
else
  echo "(no photos: python3 bench/decode/make_photos.py makes them; skipped)"
fi
