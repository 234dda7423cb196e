# Sourced by the H200 scripts: log everything to $OUT/log.txt, unpack the carried Vulkan
# loader and glvnd libraries (.gl/*.deb), point the loader at the NVIDIA driver, and set B to
# the carried release binary (.dev/gpuconv). PERFORMANCE.md, "NVIDIA H200 against cuDNN", says how both were made.
set -u
OUT=${OUT:-/tmp/h200-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
B=.dev/gpuconv
