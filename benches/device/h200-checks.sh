#!/usr/bin/env bash
# Second H200 probe: what wgpu's injected shader checks cost (GPUCONV_SHADER_CHECKS), on the
# register kernels (GPUCONV_BLOCK=off) and the block core, one shape, plus the plain SGEMM.
# Same carried files as h200.sh (setup.sh). Writes log.txt into $OUT.
source benches/device/setup.sh
S=${SWEEP_SHAPE:-resnet-3x3-28}
date -u
for checks in all trusted none no-loop-bound no-div; do
  for block in off default; do
    echo "-- checks $checks, block $block"
    if [ $block = off ]; then export GPUCONV_BLOCK=off; else unset GPUCONV_BLOCK; fi
    GPUCONV_SHADER_CHECKS=$checks $B bench --devices gpu --batch 32 --repeats 5 --only "$S" | grep -E "^$S"
  done
done
unset GPUCONV_BLOCK
for checks in all trusted; do
  echo "-- sgemm, checks $checks"
  GPUCONV_SHADER_CHECKS=$checks $B sgemm --size 4096 --repeats 5 | grep -E "tile|ceiling"
done
date -u
