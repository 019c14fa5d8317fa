#!/usr/bin/env bash
# GPU verification (issue 8): build the fused ops, compare them with their references (forward
# and gradients), run the GPU benchmarks, and write everything to $OUT (default ./gpu-results).
#   bash tools/gpu_verify.sh [HOST_CHECKOUT]
# With a host checkout, also the embedded-vs-host G+D step benchmark on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export COCKTAIL_EXT_CACHE="$OUT/ext-cache" COCKTAIL_FUSED_OPS=1
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$OUT/machine.txt" 2>&1
python -m pytest -q tests/torch_utils_ext/test_ops_cuda.py tests/torch_utils_ext/test_custom_ops.py > "$OUT/cuda_tests.txt" 2>&1; echo "tests rc=$?" >> "$OUT/cuda_tests.txt"
python bench/bench_ops_cuda.py > "$OUT/bench_ops_cuda.txt" 2>&1
if [ $# -ge 1 ]; then
  python bench/bench_networks.py --host "$1" --device cuda --configs 64px,128px,gpu256 --repeats 9 > "$OUT/bench_networks.txt" 2>&1
fi
cat "$OUT"/*.txt
