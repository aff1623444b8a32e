#!/bin/bash
# Single-thread decode of 12-megapixel 4:2:0 q90 JPEGs, side by side in one run: the managed decoder, ImageSharp 2.1.13
# and Pillow 9.4 (libjpeg-turbo 2.1.5). Makes the photos if they are missing (bench/decode/make_photos.py).
# usage: bench/decode/run.sh [REPS] [FOLDER]   (default 5, bench/data/photos12mp)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-5}
folder=${2:-bench/data/photos12mp}
[ -d "$folder" ] || /usr/bin/python3 bench/decode/make_photos.py
dotnet build bench/ManagedClip.Bench -c Release -v q -nologo >/dev/null
bench=bench/ManagedClip.Bench/bin/Release/net10.0/ManagedClip.Bench
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet_out=$($bench decode "$folder" "$reps")
pillow_out=$(/usr/bin/python3 bench/decode/pillow_decode.py "$folder" "$reps")
grep -v '^sha256' <<<"$dotnet_out"
grep -v '^sha256' <<<"$pillow_out"
if [ "$(awk '$1=="sha256"{print $3}' <<<"$dotnet_out")" == "$(awk '$1=="sha256"{print $3}' <<<"$pillow_out")" ]; then
  echo "managed bytes equal Pillow's on every file"
else
  echo "MANAGED BYTES DIFFER FROM PILLOW'S"
fi
managed=$(awk '$1=="managed"{print $2}' <<<"$dotnet_out")
imagesharp=$(awk '$1=="imagesharp"{print $2}' <<<"$dotnet_out")
pillow=$(awk '$1=="pillow"{print $2}' <<<"$pillow_out")
awk -v m="$managed" -v s="$imagesharp" -v p="$pillow" 'BEGIN {
  printf "speed vs Pillow (Pillow ms / ours; target >= 0.7): managed %.2fx, imagesharp %.2fx; managed vs imagesharp %.2fx faster\n", p/m, p/s, s/m }'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
