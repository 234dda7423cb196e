#!/usr/bin/env python3
"""Side-by-side table of a `gpuconv bench --json` run on a real GPU against torch_cudnn.py's
results from the same machine and session.

usage: compare_cudnn.py GPUCONV.jsonl CUDNN.jsonl [PEAK_GFLOPS]

Per shape and op: GFLOP/s of gpuconv (device time from timestamp queries, and resident wall
time), cuDNN, the ratio gpuconv device / cuDNN, and gpuconv's share of PEAK_GFLOPS (default:
the datasheet fp32 peak of an H100/H200 SXM, 66.9 TFLOP/s). Then per op: geomean of the ratio.
"""
import json
import math
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def geomean(v):
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def main():
    ours, peer = load(sys.argv[1]), load(sys.argv[2])
    peak = float(sys.argv[3]) if len(sys.argv) > 3 else 66900.0
    g = {(r["shape"], r["op"], r["device"]): r["gflops"] for r in ours}
    c = {(r["shape"], r["op"]): r["gflops"] for r in peer}
    for (shape, op), gf in c.items():
        if op == "sgemm":
            print(f"cuDNN-side fp32 SGEMM {shape}: {gf:.0f} GFLOP/s ({100 * gf / peak:.0f} % of {peak:.0f})")
    shapes = list(dict.fromkeys(r["shape"] for r in ours))
    ops = ["forward", "input-grad", "weight-grad"]
    print("| shape | op | gpuconv device GFLOP/s | gpuconv wall GFLOP/s | cuDNN GFLOP/s | device/cuDNN | % of fp32 peak |")
    print("|---|---|---|---|---|---|---|")
    ratios = {op: [] for op in ops}
    for shape in shapes:
        for op in ops:
            dev = g.get((shape, op, "gpu-device"))
            wall = g.get((shape, op, "gpu"))
            ref = c.get((shape, op))
            if dev is None or ref is None:
                continue
            ratios[op].append(dev / ref)
            print(f"| {shape} | {op} | {dev:.0f} | {wall:.0f} | {ref:.0f} | {dev / ref:.2f} | {100 * dev / peak:.1f} |")
    print()
    print("| op | device/cuDNN geomean (min-max) |")
    print("|---|---|")
    for op in ops:
        v = ratios[op]
        if v:
            print(f"| {op} | {geomean(v):.2f} ({min(v):.2f}-{max(v):.2f}) |")


if __name__ == "__main__":
    main()
