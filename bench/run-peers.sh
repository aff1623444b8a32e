#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: seeded full-size fp32 ViT-B/32 and RN50 checkpoints, their ONNX exports, then ManagedClip,
# ONNX Runtime and PyTorch side by side (interleaved rounds), peak memory, the machine's FMA ceiling and the GEMM sweep.
# Needs the .NET 10 SDK and Debian's python3-torch (with libopenblas0-pthread).
# Usage: bench/run-peers.sh [DATA_DIR] [ManagedClip.Peer options: --rounds R --seconds S --no-pytorch]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench/data}"; shift || true
mkdir -p "$data"
dotnet build "$root/bench/ManagedClip.Bench" -c Release -v q -nologo
dotnet build "$root/bench/ManagedClip.Peer" -c Release -v q -nologo
bench="$root/bench/ManagedClip.Bench/bin/Release/net10.0/ManagedClip.Bench.dll"
dotnet "$bench" weights "$data"
/usr/bin/python3 "$root/bench/peer/export_onnx.py" export "$data"
"$root/bench/ManagedClip.Peer/bin/Release/net10.0/ManagedClip.Peer" run "$data" --out "$root/BENCHMARKS.md" "$@"
{
  echo
  echo "## The machine's FMA ceiling and the GEMM kernel (\`ManagedClip.Bench peak\`, \`ceiling\`, \`gemm\`)"
  echo
  echo '```'
  dotnet "$bench" peak
  dotnet "$bench" ceiling
  dotnet "$bench" gemm
  echo '```'
  echo
  # Measured separately by bench/aot-vs-jit.sh (it publishes the Native AOT builds).
  if [ -f "$root/bench/aot-vs-jit.md" ]; then cat "$root/bench/aot-vs-jit.md"; echo; fi
  cat "$root/bench/notes.md"
} >> "$root/BENCHMARKS.md"
