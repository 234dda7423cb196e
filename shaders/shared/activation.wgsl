// The epilogue's activations (src/epilogue.rs is their description) on `Act`, which the kernel
// declares as f32 or vec4<f32> (the functions act per component), with `ActBits` its u32 twin. `ACT` is a generated constant
// (Activation::code), so each pipeline compiles one activation; `a` and `b` are its run-time
// parameters (LeakyReLU's slope; clamp's lo and hi). NaN passes through as in PyTorch where a
// comparison decides.

const SQRT_2_OVER_PI: f32 = 0.7978845608;
const GELU_TANH_CUBIC: f32 = 0.044715;
const FRAC_1_SQRT_2: f32 = 0.7071067812;
const FRAC_1_SQRT_2PI: f32 = 0.3989422804;

// `r`, or v where v is NaN. The NaN test reads the bits: a backend may fold a select over float
// comparisons into min/max, which drop NaN (Mesa's GL does), but not one over integers.
fn keep_nan(v: Act, r: Act) -> Act {
    let magnitude = bitcast<ActBits>(v) & ActBits(0x7fffffffu);
    return select(r, v, magnitude > ActBits(0x7f800000u));
}

fn step_above(v: Act, t: f32) -> Act {
    return select(Act(0.0), Act(1.0), v > Act(t));
}

// σ(v) without overflow for either sign.
fn sigmoid(v: Act) -> Act {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= Act(0.0));
}

// tanh(v) to about 1e-7 absolute: a series near zero (where 1 − e^(−2|v|) cancels), else
// through exp (the builtin's precision is implementation-defined).
fn tanh_exact(v: Act) -> Act {
    let v2 = v * v;
    let series = v * (1.0 + v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 - v2 * (17.0 / 315.0))));
    let e = exp(-2.0 * abs(v));
    let far = sign(v) * (1.0 - e) / (1.0 + e);
    return select(far, series, abs(v) < Act(0.125));
}

// erfc(z) for z ≥ 0, relative error below 1.2e-7 (Numerical Recipes' Chebyshev fit).
fn erfc_pos(z: Act) -> Act {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

// Φ(v) = ½(1 + erf(v/√2)) without cancellation on either side.
fn normal_cdf(v: Act) -> Act {
    let e = 0.5 * erfc_pos(abs(v) * FRAC_1_SQRT_2);
    return select(1.0 - e, e, v < Act(0.0));
}

fn gelu_tanh_sigmoid(v: Act) -> Act {
    return sigmoid(2.0 * SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v * v * v));
}

fn activate(v: Act, a: f32, b: f32) -> Act {
    switch ACT {
        case 1u: { return keep_nan(v, select(v, Act(0.0), v < Act(0.0))); }
        case 2u: { return keep_nan(v, select(a * v, v, v > Act(0.0))); }
        case 3u: { return keep_nan(v, select(select(v, Act(b), v > Act(b)), Act(a), v < Act(a))); }
        case 4u: { return v * normal_cdf(v); }
        // ½v(1 + tanh u) = v·σ(2u): no cancellation for negative v.
        case 5u: { return v * gelu_tanh_sigmoid(v); }
        case 6u: { return v * sigmoid(v); }
        case 7u: { return sigmoid(v); }
        case 8u: { return tanh_exact(v); }
        default: { return v; }
    }
}

// act′ at the pre-activation v (at a kink, the side PyTorch takes).
fn activate_grad(v: Act, a: f32, b: f32) -> Act {
    switch ACT {
        case 1u: { return step_above(v, 0.0); }
        case 2u: { return select(Act(a), Act(1.0), v > Act(0.0)); }
        case 3u: { return step_above(v, a) * select(Act(0.0), Act(1.0), v < Act(b)); }
        case 4u: { return normal_cdf(v) + v * FRAC_1_SQRT_2PI * exp(-0.5 * v * v); }
        case 5u: {
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * v * v);
            let s = gelu_tanh_sigmoid(v);
            return s + 2.0 * v * s * (1.0 - s) * du;
        }
        case 6u: {
            let s = sigmoid(v);
            return s * (1.0 + v * (1.0 - s));
        }
        case 7u: {
            let s = sigmoid(v);
            return s * (1.0 - s);
        }
        case 8u: {
            let t = tanh_exact(v);
            return 1.0 - t * t;
        }
        default: { return Act(1.0); }
    }
}

// act′ from the output y, for the activations whose derivative y determines.
fn activate_grad_at_output(y: Act, a: f32, b: f32) -> Act {
    switch ACT {
        case 7u: { return y * (1.0 - y); }
        case 8u: { return 1.0 - y * y; }
        default: { return activate_grad(y, a, b); }
    }
}
