#!/usr/bin/env bash
# The GPU benchmark of issue 11, sized for about 8 minutes on one GPU: BraTS-size synthetic cases (240x240x155,
# four modalities), `seg bench` for UNet and DynUNet (eager and compiled; data for each cache mode), and a short
# `seg fit` with the store on the GPU. Every result is JSON in the folder given as the argument.
#   bash benchmarks/gpu.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu.sh OUT_DIR}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-/tmp/seg-gpu-bench/brats}
WORKERS=${WORKERS:-8}
command -v seg >/dev/null || pip install -q -e "$ROOT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
python -c "import torch, lightning, monai; print(torch.__version__, lightning.__version__, monai.__version__)" > "$OUT/versions.txt"
test -f "$DATA/BraTS2021_00019/BraTS2021_00019_seg.nii.gz" || seg synth brats --out "$DATA" --cases 20 --shape 240 240 155
COMMON=(--config "$ROOT/configs/brats.yaml" --data.root "$DATA" --data.num_workers "$WORKERS" --data.batch_size 2
        --data.samples_per_volume 2 --steps 20 --json)
for arch in unet dynunet; do
  for compile in false true; do
    timeout 150 seg bench "${COMMON[@]}" --model.architecture "$arch" --model.compile "$compile" \
      > "$OUT/bench_${arch}_compile_${compile}.json" 2> "$OUT/bench_${arch}_compile_${compile}.log" || echo "bench $arch $compile failed" >&2
  done
done
# a short real fit from the GPU-resident store: epoch time and Dice land in TensorBoard and the summary
timeout 120 seg fit --config "$ROOT/configs/brats.yaml" --data.root "$DATA" --data.cache gpu --trainer.max_epochs 2 \
  --trainer.default_root_dir "$OUT/fit" > "$OUT/fit.log" 2>&1 || echo "fit failed" >&2
tail -5 "$OUT/fit.log"
