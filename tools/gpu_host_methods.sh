#!/usr/bin/env bash
# Issue 10 on a GPU: every method of the plugin through a real checkout (--host), a few kimg
# each, with wall-clock times, written to $OUT (default ./gpu-results/host_methods.txt).
#   bash tools/gpu_host_methods.sh /path/to/stylegan2-ada-pytorch [KIMG]
# DEVICE=cpu CFG=tiny runs the same commands on a CPU (the checkout's own loop, patched to run there).
set -uo pipefail
cd "$(dirname "$0")/.."
HOST=${1:?usage: gpu_host_methods.sh HOST_CHECKOUT [KIMG]}
KIMG=${2:-4}
DEVICE=${DEVICE:-cuda}
CFG=${CFG:-auto}              # the plain run's --cfg (tiny for a CPU smoke test)
OUT=${OUT:-gpu-results}
W=$(mktemp -d)
mkdir -p "$OUT"
S=plugin/assets/sources
python -m plugin domains --domains rings --count 500 --out "$W/rings.zip" > /dev/null
python -m plugin domains --domains discs,triangles --count 500 --out "$W/dt.zip" > /dev/null
common=(--host "$HOST" --device "$DEVICE" --outdir "$W/runs" --batch 16 --tick 1 --snap 100)
run() {
  local name=$1; shift
  local t0=$(date +%s)
  python train_cocktail.py "${common[@]}" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  printf '%-10s rc=%d  %4ds  %s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$*" | tee -a "$OUT/host_methods.txt"
}
{ date -u; echo "host $HOST, device $DEVICE, $KIMG kimg per stage"; } > "$OUT/host_methods.txt"
run plain    --data "$W/rings.zip" --cfg "$CFG" --kimg "$KIMG"
run cocktail --cocktail "$S/discs.pkl,$S/rings.pkl" --root-kimg "$KIMG" --kimg "$KIMG"
run mining   --data "$W/rings.zip" --mine "$S/discs.pkl,$S/rings.pkl" --mine-kimg "$KIMG" --kimg "$KIMG"
run bypass   --data "$W/rings.zip" --resume "$S/discs.pkl" --bypass w --encoder-kimg "$KIMG" --kimg $((KIMG * 100))
run hyper    --data "$W/dt.zip" --cond 1 --resume "$S/discs.pkl" --hyper --kimg "$KIMG"
cat "$OUT/host_methods.txt"
