#!/usr/bin/env python3
"""PyTorch CPU conv_transpose2d timing on the dual of each shape of a suite, as `gpuconv bench
--transposed` times it: X of the convolution's output shape (N, K, P, Q), the convolution's
weights (K, C/groups, R, S) read as conv_transpose2d's (C_in, C_out/groups, R, S), the same
stride, dilation and groups, output padding recovering the convolution's input size, plus a
bias. Asymmetric padding is cropped from the output after a symmetric conv_transpose2d with the
smaller padding (timed). FLOPs = 2·N·K·(C/groups)·R·S·P·Q, as gpuconv counts them.

usage: /tmp/torchenv/bin/python benches/torch_transposed.py SHAPES.json OUT.jsonl
Appends one JSON record per shape: {"peer": "torch", "device": "cpu", "shape", "op":
"transposed-forward", "median_ms", "gflops", ...}. TORCH_THREADS (default 2).
"""
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

THREADS = int(os.environ.get("TORCH_THREADS", "2"))
torch.set_num_threads(THREADS)
torch.manual_seed(0)


def bench(fn, min_reps=7, max_reps=200, budget_s=1.0):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = max(min_reps, min(max_reps, int(budget_s / max(first, 1e-6))))
    for _ in range(2):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), reps


def main():
    shapes = json.load(open(sys.argv[1]))
    out = open(sys.argv[2], "a")
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}", file=sys.stderr)
    for s in shapes:
        n, c, h, w, k, r, ss, g = s["n"], s["c"], s["h"], s["w"], s["k"], s["r"], s["s"], s["groups"]
        sh, sw = s["stride"]
        pt, pl, pb, pr = s["padding"]
        dh, dw = s["dilation"]
        p = (h + pt + pb - dh * (r - 1) - 1) // sh + 1
        q = (w + pl + pr - dw * (ss - 1) - 1) // sw + 1
        # Symmetric padding min(top, bottom) in conv_transpose2d, the rest cropped.
        ph, pw = min(pt, pb), min(pl, pr)
        full_h = (p - 1) * sh - 2 * ph + dh * (r - 1) + 1
        full_w = (q - 1) * sw - 2 * pw + dw * (ss - 1) + 1
        # Rows the crop removes, then the output padding that brings the rest to h × w.
        crop_t, crop_l = pt - ph, pl - pw
        crop_b, crop_r = pb - ph, pr - pw
        oph = h - (full_h - crop_t - crop_b)
        opw = w - (full_w - crop_l - crop_r)
        x = torch.randn(n, k, p, q)
        wt = torch.randn(k, c // g, r, ss)
        b = torch.randn(c)

        def run():
            y = F.conv_transpose2d(x, wt, b, stride=(sh, sw), padding=(ph, pw),
                                   output_padding=(oph, opw), groups=g, dilation=(dh, dw))
            if crop_t or crop_l or crop_b or crop_r:
                y = y[:, :, crop_t:y.shape[2] - crop_b, crop_l:y.shape[3] - crop_r].contiguous()
            return y

        y = run()
        assert tuple(y.shape) == (n, c, h, w), (s["name"], y.shape)
        med, reps = bench(run)
        flops = 2.0 * n * k * (c // g) * r * ss * p * q
        gf = flops / (med * 1e-3) / 1e9
        print(f"{s['name']:<20} transposed-forward {med:8.2f} ms {gf:8.1f} GFLOP/s", file=sys.stderr)
        out.write(json.dumps({"peer": "torch", "device": "cpu", "shape": s["name"],
                              "op": "transposed-forward", "median_ms": round(med, 3),
                              "gflops": round(gf, 2), "flops": flops, "reps": reps,
                              "threads": THREADS}) + "\n")


if __name__ == "__main__":
    main()
