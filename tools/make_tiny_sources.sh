#!/usr/bin/env bash
# The exact commands that made the shipped tiny source models (plugin/assets/sources/).
# Each is a plain train_cocktail.py run on a procedural domain; the final G_ema/G/D pickle
# is copied under the domain's name. On a 2-core CPU: about 15 minutes per model.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tiny_sources}
KIMG=${KIMG:-150}
mkdir -p "$WORK" plugin/assets/sources
train() {   # name, domains
  local name=$1 domains=$2 cond=0
  [[ $domains == *,* ]] && cond=1
  python -m plugin domains --domains "$domains" --count 2000 --resolution 32 --seed 0 --out "$WORK/$name.zip"
  OMP_NUM_THREADS=1 python train_cocktail.py --outdir "$WORK/runs-$name" --data "$WORK/$name.zip" --cond $cond \
      --cfg tiny --batch 32 --kimg "$KIMG" --seed 0 --snap 10 --workers 1
  # Ship the networks and dataset options only (no optimiser state): a few hundred kB each.
  python - "$(ls -d "$WORK/runs-$name"/*/ | tail -1)network-snapshot-$(printf %06d "$KIMG").pkl" \
      "plugin/assets/sources/$name.pkl" <<'PY'
import sys, warnings
from plugin import load_network_pkl, save_network_pkl
warnings.simplefilter('ignore')
data = load_network_pkl(sys.argv[1])
save_network_pkl({k: data[k] for k in ('training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe')}, sys.argv[2])
PY
}
# Two at a time (one thread each) on a 2-core machine.
(train discs discs; train stripes stripes; train cond-discs-triangles discs,triangles) &
(train squares squares; train rings rings) &
wait
