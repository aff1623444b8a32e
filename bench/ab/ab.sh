#!/usr/bin/env bash
# In-process interleaved A/B of library builds (see host/Program.cs).
#   bench/ab/ab.sh build REV|. NAME    build the adapter against git revision REV (or the working tree, ".") into $AB_DIR/NAME
#   bench/ab/ab.sh gemm "M K N THREADS" REPS ROUNDS NAME...
#   bench/ab/ab.sh model CHECKPOINT image|text BATCH THREADS REPS ROUNDS NAME...
#   bench/ab/ab.sh load CHECKPOINT REPS ROUNDS NAME...   time ClipModel.Load itself
# Example: ab.sh build HEAD~1 before; ab.sh build . after; ab.sh model bench/data/vit-b32.safetensors image 8 2 3 5 before after
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ab="${AB_DIR:-/tmp/managedclip-ab}"
mkdir -p "$ab"
case "${1:-}" in
  build)
    rev="$2" name="$3" src="$root"
    if [ "$rev" != "." ]; then
      src="$ab/src-$name"; rm -rf "$src"; mkdir -p "$src"
      git -C "$root" archive "$rev" | tar -x -C "$src"
    fi
    rm -rf "$ab/$name" "$root/bench/ab/adapter/obj" "$root/bench/ab/adapter/bin"
    dotnet build "$root/bench/ab/adapter" -c Release -v q -nologo -p:ClipSrc="$src" -o "$ab/$name" | grep -E " error |rror\(s\)"
    ;;
  gemm|model|load)
    mode="$1"; shift
    dotnet build "$root/bench/ab/host" -c Release -v q -nologo -o "$ab/host" >/dev/null
    n=$(case "$mode" in gemm|load) echo 3 ;; *) echo 6 ;; esac)
    fixed=("${@:1:$n}"); names=("${@:$((n + 1))}")
    dotnet "$ab/host/ManagedClip.AB.dll" "$mode" "${fixed[@]}" "${names[@]/#/$ab/}"
    ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
