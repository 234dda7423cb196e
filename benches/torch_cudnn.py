#!/usr/bin/env python3
"""PyTorch cuDNN (fp32, TF32 off) on the shape suite: the GPU peer for `gpuconv bench` on a real
GPU (issue 3, goal 3). Same ops and FLOP count as ../shared/peers/torch_bench.py (forward, and
aten.convolution_backward with an output mask selecting only the input or only the weight
gradient), timed with CUDA events: median of REPS runs after warm-ups, cudnn.benchmark on (so
cuDNN picks its fastest algorithm per shape, as a training loop would). Also a fp32 SGEMM
(torch.mm, TF32 off) as the practical fp32 ceiling of the card.

usage: torch_cudnn.py SHAPES.json RESULTS.jsonl [--batch N]
Writes one JSON record per line: peer "torch-cudnn", device, shape, op, median_ms, gflops.
"""
import argparse
import json
import statistics

import torch

REPS = 20


def out_hw(s):
    sh, sw = s["stride"]
    pt, pl, pb, pr = s["padding"]
    dh, dw = s["dilation"]
    p = (s["h"] + pt + pb - dh * (s["r"] - 1) - 1) // sh + 1
    q = (s["w"] + pl + pr - dw * (s["s"] - 1) - 1) // sw + 1
    return p, q


def time_ms(fn, reps=REPS):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {name}, "
          f"tf32 matmul={torch.backends.cuda.matmul.allow_tf32} cudnn={torch.backends.cudnn.allow_tf32}")
    records = []
    for m in (4096, 8192):
        a, b = torch.randn(m, m, device=dev), torch.randn(m, m, device=dev)
        c = torch.empty(m, m, device=dev)
        ms = time_ms(lambda: torch.mm(a, b, out=c), reps=10)
        gf = 2.0 * m ** 3 / (ms * 1e-3) / 1e9
        print(f"sgemm {m}^3 fp32: {ms:.3f} ms {gf:.0f} GFLOP/s")
        records.append({"peer": "torch-cudnn", "device": name, "shape": f"sgemm-{m}", "op": "sgemm",
                        "median_ms": ms, "gflops": gf})
    for s in json.load(open(args.shapes)):
        n = args.batch or s["n"]
        pt, pl, pb, pr = s["padding"]
        assert pt == pb and pl == pr, "asymmetric padding not handled"
        c, h, w, k, r, ss, g = s["c"], s["h"], s["w"], s["k"], s["r"], s["s"], s["groups"]
        stride, padding, dilation = list(s["stride"]), [pt, pl], list(s["dilation"])
        p, q = out_hw(s)
        x = torch.randn(n, c, h, w, device=dev)
        wt = torch.randn(k, c // g, r, ss, device=dev)
        dy = torch.randn(n, k, p, q, device=dev)
        flops = 2.0 * n * k * (c // g) * r * ss * p * q

        def bwd(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, wt, None, stride, padding, dilation, False, [0, 0], g, mask)

        ops = (("forward", lambda: torch.nn.functional.conv2d(x, wt, None, stride, padding, dilation, g)),
               ("input-grad", lambda: bwd([True, False, False])),
               ("weight-grad", lambda: bwd([False, True, False])))
        with torch.no_grad():
            for op, fn in ops:
                ms = time_ms(fn)
                gf = flops / (ms * 1e-3) / 1e9
                print(f"{s['name']:<20} {op:<12} n={n:<3} {ms:9.4f} ms {gf:9.1f} GFLOP/s")
                records.append({"peer": "torch-cudnn", "device": name, "shape": s["name"], "op": op,
                                "batch": n, "median_ms": ms, "gflops": gf, "flops": flops})
    with open(args.out, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
