#!/usr/bin/env bash
# The exact commands that made the shipped tiny source models (plugin/assets/sources/).
# Each is a plain train_cocktail.py run on a procedural domain (2000 images, 32 px); the
# final snapshot's networks are copied under the domain's name. On a 2-core CPU, two runs
# side by side at one thread each take about 12 s/kimg each (squares need longer than the
# other domains to get their corners: 200 kimg).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tiny_sources}
mkdir -p "$WORK" plugin/assets/sources

dataset() {   # name, domains
  python -m plugin domains --domains "$2" --count 2000 --resolution 32 --seed 0 --out "$WORK/$1.zip"
}

train() {     # name, kimg, cond
  OMP_NUM_THREADS=1 python train_cocktail.py --outdir "$WORK/runs-$1" --data "$WORK/$1.zip" --cond "$3" \
      --cfg tiny --batch 32 --kimg "$2" --seed 0 --snap 10 --workers 1
}

ship() {      # name, kimg: keep the networks and dataset options, drop the optimiser state
  python - "$(ls -d "$WORK/runs-$1"/*/ | tail -1)network-snapshot-$(printf %06d "$2").pkl" \
      "plugin/assets/sources/$1.pkl" <<'PY'
import sys, warnings
from plugin import load_network_pkl, save_network_pkl
warnings.simplefilter('ignore')
data = load_network_pkl(sys.argv[1])
save_network_pkl({k: data[k] for k in ('training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe')}, sys.argv[2])
PY
}

# The three-domain cocktail world (plugin/assets/runs/), stored as a user's runs are:
# <run dir>/network-snapshot-NNNNNN.pkl, the number being the run's total kimg.
ship_run() {  # source pickle, run dir name, kimg
  mkdir -p "plugin/assets/runs/$2"
  python - "$1" "plugin/assets/runs/$2/network-snapshot-$(printf %06d "$3").pkl" <<'PY'
import sys, warnings
from plugin import load_network_pkl, save_network_pkl
warnings.simplefilter('ignore')
data = load_network_pkl(sys.argv[1])
save_network_pkl({k: data[k] for k in ('training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe')}, sys.argv[2])
PY
}

if [[ ${1:-} != --ship-only ]]; then
  dataset discs discs; dataset squares squares; dataset rings rings; dataset discs-triangles discs,triangles
  dataset stripes stripes
  (train discs 120 0; train rings 100 0) &
  (train squares 200 0; train discs-triangles 100 1) &
  wait
  # discs continued for 80 kimg more (weights only), stripes from scratch: side by side, one thread each.
  # (stripes: 40 kimg; trained on to 76 kimg, D took over and its domain accuracy fell from 1.00 to 0.86.)
  OMP_NUM_THREADS=1 python train_cocktail.py --outdir "$WORK/runs-discs200" --data "$WORK/discs.zip" --cond 0 \
      --cfg tiny --batch 32 --kimg 80 --seed 0 --snap 5 --workers 1 --resume plugin/assets/sources/discs.pkl \
      --resume-mode weights &
  OMP_NUM_THREADS=1 python train_cocktail.py --outdir "$WORK/runs-stripes" --data "$WORK/stripes.zip" --cond 0 \
      --cfg tiny --batch 32 --kimg 40 --seed 0 --snap 5 --workers 1 &
  wait
fi
ship discs 120; ship squares 200; ship rings 100; ship discs-triangles 100
ship_run "$(ls -d "$WORK/runs-discs200"/*/ | tail -1)network-snapshot-000080.pkl" 00000-discs-tiny 200
ship_run plugin/assets/sources/rings.pkl 00001-rings-tiny 100
ship_run "$(ls -d "$WORK/runs-stripes"/*/ | tail -1)network-snapshot-000040.pkl" 00002-stripes-tiny 40
