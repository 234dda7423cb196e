#!/usr/bin/env bash
# One call of the lent-GPU tool (NVIDIA H200, Vulkan through the NVIDIA ICD): adapter facts, the
# plain WGSL SGEMM ceiling, `gpuconv bench` at batch 32 on the suite (GPU column), PyTorch cuDNN
# fp32 (TF32 off) on the same shapes, the side-by-side table, then a block-tile sweep on one shape.
# Run from the repo root with .gl and .dev carried (setup.sh). Writes log.txt and *.jsonl into
# $OUT.
source benches/device/setup.sh
date -u
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv
$B info
echo "== sgemm"; $B sgemm --size 4096 --repeats 5
echo "== bench batch 32"
$B bench --devices gpu --batch 32 --repeats 5 --json "$OUT/gpu.jsonl"
echo "== cuDNN"
python3 benches/torch_cudnn.py benches/shapes.json "$OUT/cudnn.jsonl" --batch 32
echo "== compare"
python3 benches/compare_cudnn.py "$OUT/gpu.jsonl" "$OUT/cudnn.jsonl"
echo "== block sweep (GPUCONV_BLOCK=bm,bn,bk,tm,tn), ${SWEEP_SHAPE:=resnet-3x3-28}"
for t in ${SWEEP_BLOCKS:-128,128,8,8,8 128,128,16,8,8 128,64,8,8,4 64,128,8,4,8 64,64,8,4,4 64,64,16,8,8 128,128,32,8,8}; do
  echo "-- block $t"
  GPUCONV_BLOCK=$t $B bench --devices gpu --batch 32 --repeats 5 --only "$SWEEP_SHAPE" | grep -E "^$SWEEP_SHAPE"
done
date -u
