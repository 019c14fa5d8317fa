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

if [[ ${1:-} != --ship-only ]]; then
  dataset discs discs; dataset squares squares; dataset rings rings; dataset discs-triangles discs,triangles
  (train discs 120 0; train rings 100 0) &
  (train squares 200 0; train discs-triangles 100 1) &
  wait
fi
ship discs 120; ship squares 200; ship rings 100; ship discs-triangles 100
