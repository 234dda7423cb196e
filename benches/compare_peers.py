#!/usr/bin/env python3
"""Side-by-side table of a `gpuconv bench --json` run against the peers' results file.

usage: compare_peers.py GPUCONV.jsonl PEERS.jsonl

Prints, per shape and op, GFLOP/s of gpuconv CPU / GPU (resident) and each peer, the ratios
gpuconv CPU / torch, gpuconv CPU / candle and gpuconv GPU / Burn, and their geometric means
with min and max per op. Both files must come from the same machine in the same session.
"""
import json
import math
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ours, peers = load(sys.argv[1]), load(sys.argv[2])
    g = {}
    for r in ours:
        g[(r["shape"], r["op"], "gpuconv-" + r["device"])] = r["gflops"]
    for r in peers:
        g[(r["shape"], r["op"], r["peer"])] = r["gflops"]
    shapes = list(dict.fromkeys(r["shape"] for r in ours))
    ops = ["forward", "input-grad", "weight-grad"]
    cols = ["gpuconv-cpu", "gpuconv-gpu", "torch", "candle", "burn"]
    pairs = [("gpuconv-cpu", "torch"), ("gpuconv-cpu", "candle"), ("gpuconv-gpu", "burn")]
    print("| shape | op | " + " | ".join(cols) + " | " + " | ".join(f"{a[8:]}/{b}" for a, b in pairs) + " |")
    print("|" + "---|" * (2 + len(cols) + len(pairs)))
    ratios = {(op, p): [] for op in ops for p in pairs}
    for shape in shapes:
        for op in ops:
            if (shape, op, "gpuconv-cpu") not in g and (shape, op, "gpuconv-gpu") not in g:
                continue
            cells = [f"{g[(shape, op, c)]:.1f}" if (shape, op, c) in g else "-" for c in cols]
            rcells = []
            for a, b in pairs:
                if (shape, op, a) in g and (shape, op, b) in g:
                    v = g[(shape, op, a)] / g[(shape, op, b)]
                    ratios[(op, (a, b))].append(v)
                    rcells.append(f"{v:.2f}")
                else:
                    rcells.append("-")
            print(f"| {shape} | {op} | " + " | ".join(cells) + " | " + " | ".join(rcells) + " |")
    print()
    print("| op | " + " | ".join(f"{a[8:]}/{b} geomean (min-max)" for a, b in pairs) + " |")
    print("|" + "---|" * (1 + len(pairs)))
    for op in ops:
        cells = []
        for p in pairs:
            v = ratios[(op, p)]
            if v:
                gm = math.exp(sum(math.log(x) for x in v) / len(v))
                cells.append(f"{gm:.2f} ({min(v):.2f}-{max(v):.2f})")
            else:
                cells.append("-")
        print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
