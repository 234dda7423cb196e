// The epilogue's backward, elementwise: out = scale·dy·act′, act′ taken from the saved output y
// (from_output = 1, for the activations whose derivative y determines) or from the saved
// pre-activation. scale = 1 gives the gradient at the pre-activation (the bias gradient's dY),
// α the convolution's dY, β the residual's gradient.

@group(0) @binding(0) var<uniform> ep: Elementwise;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> saved: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

alias Act = f32;
alias ActBits = u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= ep.len { return; }
    let s = saved[i];
    var d: f32;
    if ep.from_output != 0u {
        d = activate_grad_at_output(s, ep.act_a, ep.act_b);
    } else {
        d = activate_grad(s, ep.act_a, ep.act_b);
    }
    out[i] = ep.alpha * dy[i] * d;
}
