// The workgroup-memory GEMM core shared by the block_* kernels (hardware GPUs): one workgroup
// computes a BM × BN tile of C = A·B over a reduction range, staging BK-deep slices of A
// (stored transposed, [k][m]) and B ([k][n]) in workgroup memory; each invocation then holds a
// TM × TN register tile read from those slices as vec4s.
//
// The pass file in front of this core supplies the index maps, so the three passes are the same
// GEMM:
//   struct Slice; slice_of(rest) -> Slice   the grid's third coordinate (group, split)
//   red_range(sl) -> vec2<u32>       reduction range [t0, t1) of the slice
//   a_row(sl, m) -> ARow, a_load(ARow, t) -> f32, A_K_FASTEST    A(m, t) for GEMM row m
//   b_col(sl, n) -> BCol, b_load(BCol, t) -> f32, B_K_FASTEST    B(t, n) for GEMM column n
//   store_c(sl, m, n, v)             C(m, n) for m < cv.rows, n < cv.cols
// *_K_FASTEST picks how the invocations spread one slice's loads: along t (operands contiguous in
// the reduction) or along m / n (contiguous in the rows), so neighbouring invocations read
// neighbouring addresses. Generated constants: BM, BN, BK, TM, TN, THREADS = (BM/TM)·(BN/TN),
// A_LOADS = BM·BK/THREADS, B_LOADS = BN·BK/THREADS, TM4 = TM/4, TN4 = TN/4, QUAD = 4.

var<workgroup> a_tile: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> b_tile: array<vec4<f32>, BK * BN / 4u>;

// t / d for t < 2^24 through an f32 reciprocal and one correction: a few instructions instead of
// the integer division's long sequence (the host keeps reduction indices below 2^24).
fn div_small(t: u32, d: u32, inv_d: f32) -> u32 {
    var q = u32(f32(t) * inv_d);
    if q * d > t { q -= 1u; } else if (q + 1u) * d <= t { q += 1u; }
    return q;
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let tile = linear_workgroup(wid, nwg);
    // Uniform across the workgroup, so the barriers below stay in uniform control flow.
    if tile >= cv.tiles_total { return; }
    let tile_m = tile % cv.tiles_m;
    let tile_n = (tile / cv.tiles_m) % cv.tiles_n;
    let sl = slice_of(tile / (cv.tiles_m * cv.tiles_n));
    let range = red_range(sl);
    let m0 = tile_m * BM;
    let n0 = tile_n * BN;

    // The slice elements this invocation loads: fixed (m, k) / (n, k) offsets every step.
//#for i in A_LOADS
    let ea{i} = lid + {i}u * THREADS;
    let am{i} = select(ea{i} % BM, ea{i} / BK, A_K_FASTEST);
    let ak{i} = select(ea{i} / BM, ea{i} % BK, A_K_FASTEST);
    let arow{i} = a_row(sl, min(m0 + am{i}, cv.rows - 1u));
//#end
//#for i in B_LOADS
    let eb{i} = lid + {i}u * THREADS;
    let bn{i} = select(eb{i} % BN, eb{i} / BK, B_K_FASTEST);
    let bk{i} = select(eb{i} / BN, eb{i} % BK, B_K_FASTEST);
    let bcol{i} = b_col(sl, min(n0 + bn{i}, cv.cols - 1u));
//#end

    // This invocation's outputs: vec4 quads tx, tx + BM/TM, … along m and ty, … along n, so
    // neighbouring invocations read neighbouring quads of the slices (no bank conflicts).
    let tx = lid % (BM / TM);
    let ty = lid / (BM / TM);
//#for i in TM4
//#for j in TN4
//#for c in QUAD
    var acc{i}_{j}_{c} = vec4<f32>();
//#end
//#end
//#end

    for (var t0 = range.x; t0 < range.y; t0 += BK) {
        // Past the range reads a clamped element and stores zero.
//#for i in A_LOADS
        let ta{i} = t0 + ak{i};
        a_tile[(ak{i} * BM + am{i}) / 4u][am{i} % 4u] =
            select(0.0, a_load(arow{i}, min(ta{i}, range.y - 1u)), ta{i} < range.y);
//#end
//#for i in B_LOADS
        let tb{i} = t0 + bk{i};
        b_tile[(bk{i} * BN + bn{i}) / 4u][bn{i} % 4u] =
            select(0.0, b_load(bcol{i}, min(tb{i}, range.y - 1u)), tb{i} < range.y);
//#end
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
//#for i in TM4
            let a{i} = a_tile[kk * (BM / 4u) + {i}u * (BM / TM) + tx];
//#end
//#for j in TN4
            let b{j} = b_tile[kk * (BN / 4u) + {j}u * (BN / TN) + ty];
//#end
//#for i in TM4
//#for j in TN4
//#for c in QUAD
            acc{i}_{j}_{c} = fma(a{i}, vec4(b{j}[{c}]), acc{i}_{j}_{c});
//#end
//#end
//#end
        }
        workgroupBarrier();
    }

//#for i in TM4
    let mq{i} = m0 + ({i}u * (BM / TM) + tx) * 4u;
//#end
//#for j in TN4
//#for c in QUAD
    let n{j}_{c} = n0 + ({j}u * (BN / TN) + ty) * 4u + {c}u;
//#end
//#end
//#for i in TM4
//#for j in TN4
//#for c in QUAD
    if n{j}_{c} < cv.cols {
//#for e in QUAD
        if mq{i} + {e}u < cv.rows { store_c(sl, mq{i} + {e}u, n{j}_{c}, acc{i}_{j}_{c}[{e}]); }
//#end
    }
//#end
//#end
//#end
}
