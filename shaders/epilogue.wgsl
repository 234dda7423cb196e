// The forward epilogue as a pass of its own over Y, in place: y = act(α·y + b[k] + β·z) for the
// `len` elements of this binding, whose first is element `first` of the output (for the bias
// channel k = (first + i) / plane mod channels). The forward kernels fuse the same epilogue into
// their store (shared/epilogue.wgsl); this pass serves the plans they cannot fuse into (tiled
// problems, the transposed forward) and is the unfused baseline the benchmark compares against.

@group(0) @binding(0) var<uniform> ep: Elementwise;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> pre: array<f32>;

override WG: u32 = 64u;

alias Act = f32;
alias ActBits = u32;

fn epi_params() -> vec4<f32> {
    return vec4(ep.alpha, ep.beta, ep.act_a, ep.act_b);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= ep.len { return; }
    var b = 0.0;
    if ep.has_bias != 0u {
        b = bias[((ep.first + i) / ep.plane) % ep.channels];
    }
    y[i] = finish(y[i], b, i);
}
