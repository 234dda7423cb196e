//! The forward epilogue y = act(α·conv(x, w) + b + β·z) and its backward.
//!
//! The GPU forward kernels apply it as they store Y, so a fused layer reads and writes Y once
//! (`gpu::plan::epilogue`); the CPU paths apply it to the convolution's output. This module is
//! its one description: the activations, their parameters and names, the f64 values every path
//! is tested against, and the elementwise passes the CPU paths run.
//!
//! Backward: with pre = α·conv + b + β·z, dpre = dy·act′(pre). Then db = Σ dpre (the bias
//! gradient of dpre), the convolution's gradients take α·dpre as their dY, and dz = β·dpre.
//! act′ is taken from the saved output y where y determines it (identity, ReLU, LeakyReLU with a
//! positive slope, ReLU6 and clamp, sigmoid, tanh), else from the pre-activation, which the
//! forward can also write ([`Saved`]).

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::cpu::alloc::vec_with_capacity;
use crate::error::{Error, Result, TensorRole};
use crate::problem::check_data_len;

/// The activation of a fused forward epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// y = v.
    #[default]
    Identity,
    /// y = max(v, 0).
    Relu,
    /// y = v for v > 0, slope·v otherwise.
    LeakyRelu {
        /// The negative slope.
        slope: f32,
    },
    /// y = clamp(v, 0, 6).
    Relu6,
    /// y = clamp(v, lo, hi).
    Clamp {
        /// Lower bound.
        lo: f32,
        /// Upper bound (not below `lo`).
        hi: f32,
    },
    /// y = v·Φ(v) = ½·v·(1 + erf(v/√2)).
    Gelu,
    /// y = ½·v·(1 + tanh(√(2/π)·(v + 0.044715·v³))).
    GeluTanh,
    /// y = v·σ(v).
    Silu,
    /// y = σ(v) = 1/(1 + e^(−v)).
    Sigmoid,
    /// y = tanh(v).
    Tanh,
}

/// The GELU tanh form's cubic coefficient.
const GELU_TANH_CUBIC: f64 = 0.044715;
/// √(2/π).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

impl Activation {
    /// The kernel code of this activation (`ACT` in `shaders/shared/activation.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu { .. } => 2,
            Activation::Relu6 | Activation::Clamp { .. } => 3,
            Activation::Gelu => 4,
            Activation::GeluTanh => 5,
            Activation::Silu => 6,
            Activation::Sigmoid => 7,
            Activation::Tanh => 8,
        }
    }

    /// Every activation code, for the shader tests.
    pub const CODES: std::ops::RangeInclusive<u32> = 0..=8;

    /// The activation's run-time parameters (the kernels' `act_a`, `act_b`).
    pub fn params(self) -> [f32; 2] {
        match self {
            Activation::LeakyRelu { slope } => [slope, 0.0],
            Activation::Relu6 => [0.0, 6.0],
            Activation::Clamp { lo, hi } => [lo, hi],
            _ => [0.0, 0.0],
        }
    }

    /// Checks the parameters: finite, and lo ≤ hi.
    pub fn validate(self) -> Result<()> {
        let bad = |reason: String| Err(Error::Epilogue { reason });
        match self {
            Activation::LeakyRelu { slope } if !slope.is_finite() => {
                bad(format!("leaky-relu slope {slope} is not finite"))
            }
            Activation::Clamp { lo, hi } if !(lo.is_finite() && hi.is_finite()) => {
                bad(format!("clamp bounds lo={lo}, hi={hi} are not both finite"))
            }
            Activation::Clamp { lo, hi } if lo > hi => {
                bad(format!("clamp lo={lo} is above hi={hi}"))
            }
            _ => Ok(()),
        }
    }

    /// act(v), in f64.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::Identity => v,
            // NaN stays NaN, as in PyTorch.
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            Activation::LeakyRelu { slope } => {
                if v > 0.0 {
                    v
                } else {
                    f64::from(slope) * v
                }
            }
            Activation::Relu6 | Activation::Clamp { .. } => {
                let [lo, hi] = self.params().map(f64::from);
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            }
            Activation::Gelu => 0.5 * v * libm::erfc(-v * std::f64::consts::FRAC_1_SQRT_2),
            Activation::GeluTanh => {
                let u = SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v * v * v);
                // ½(1 + tanh u) = σ(2u): no cancellation for negative v.
                v * sigmoid(2.0 * u)
            }
            Activation::Silu => v * sigmoid(v),
            Activation::Sigmoid => sigmoid(v),
            Activation::Tanh => v.tanh(),
        }
    }

    /// act′(v) at the pre-activation v, in f64. At a kink the derivative of the side PyTorch
    /// takes: ReLU′(0) = 0, LeakyReLU′(0) = slope, clamp′ = 0 at lo and hi.
    pub fn derivative(self, v: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => f64::from(u8::from(v > 0.0)),
            Activation::LeakyRelu { slope } => {
                if v > 0.0 {
                    1.0
                } else {
                    f64::from(slope)
                }
            }
            Activation::Relu6 | Activation::Clamp { .. } => {
                let [lo, hi] = self.params().map(f64::from);
                f64::from(u8::from(v > lo && v < hi))
            }
            Activation::Gelu => {
                let cdf = 0.5 * libm::erfc(-v * std::f64::consts::FRAC_1_SQRT_2);
                let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
                cdf + v * pdf
            }
            Activation::GeluTanh => {
                let u = SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v * v * v);
                let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * v * v);
                let s = sigmoid(2.0 * u);
                s + 2.0 * v * s * (1.0 - s) * du
            }
            Activation::Silu => {
                let s = sigmoid(v);
                s * (1.0 + v * (1.0 - s))
            }
            Activation::Sigmoid => {
                let s = sigmoid(v);
                s * (1.0 - s)
            }
            Activation::Tanh => {
                let t = v.tanh();
                1.0 - t * t
            }
        }
    }

    /// Whether act′ is a function of the output y (so the forward need not save its
    /// pre-activation for the backward).
    pub fn derivative_from_output(self) -> bool {
        match self {
            Activation::Identity
            | Activation::Relu
            | Activation::Relu6
            | Activation::Sigmoid
            | Activation::Tanh => true,
            Activation::LeakyRelu { slope } => slope > 0.0,
            Activation::Clamp { lo, hi } => lo < hi,
            Activation::Gelu | Activation::GeluTanh | Activation::Silu => false,
        }
    }

    /// act′ from the output y (only where [`Activation::derivative_from_output`]).
    pub fn derivative_at_output(self, y: f64) -> f64 {
        match self {
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Tanh => 1.0 - y * y,
            // Sign- and order-preserving: y is on the same side of each kink as the input.
            _ => self.derivative(y),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Identity => f.write_str("identity"),
            Activation::Relu => f.write_str("relu"),
            Activation::LeakyRelu { slope } => write!(f, "leaky-relu:{slope}"),
            Activation::Relu6 => f.write_str("relu6"),
            Activation::Clamp { lo, hi } => write!(f, "clamp:{lo},{hi}"),
            Activation::Gelu => f.write_str("gelu"),
            Activation::GeluTanh => f.write_str("gelu-tanh"),
            Activation::Silu => f.write_str("silu"),
            Activation::Sigmoid => f.write_str("sigmoid"),
            Activation::Tanh => f.write_str("tanh"),
        }
    }
}

/// The names [`Activation::from_str`] accepts.
pub const ACTIVATION_NAMES: &str =
    "identity | relu | leaky-relu:SLOPE | relu6 | clamp:LO,HI | gelu | gelu-tanh | silu | sigmoid | tanh";

impl FromStr for Activation {
    type Err = Error;

    /// Parses `identity`, `relu`, `leaky-relu:SLOPE`, `relu6`, `clamp:LO,HI`, `gelu`,
    /// `gelu-tanh`, `silu`, `sigmoid` or `tanh`, and validates the parameters.
    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidSetting {
            name: "activation",
            value: format!("{text} ({why})"),
            expected: ACTIVATION_NAMES,
        };
        let number = |s: &str| -> Result<f32> {
            s.trim()
                .parse::<f32>()
                .map_err(|_| bad(&format!("{:?} is not a number", s.trim())))
        };
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a)),
            None => (text.trim(), None),
        };
        let act = match (name, arg) {
            ("identity", None) => Activation::Identity,
            ("relu", None) => Activation::Relu,
            ("leaky-relu", Some(a)) => Activation::LeakyRelu { slope: number(a)? },
            ("relu6", None) => Activation::Relu6,
            ("clamp", Some(a)) => match a.split_once(',') {
                Some((lo, hi)) => Activation::Clamp {
                    lo: number(lo)?,
                    hi: number(hi)?,
                },
                None => return Err(bad("clamp takes LO,HI")),
            },
            ("gelu", None) => Activation::Gelu,
            ("gelu-tanh", None) => Activation::GeluTanh,
            ("silu", None) => Activation::Silu,
            ("sigmoid", None) => Activation::Sigmoid,
            ("tanh", None) => Activation::Tanh,
            ("leaky-relu", None) => return Err(bad("leaky-relu takes :SLOPE")),
            ("clamp", None) => return Err(bad("clamp takes :LO,HI")),
            (_, Some(_)) => return Err(bad("this activation takes no parameter")),
            _ => return Err(bad("unknown activation")),
        };
        act.validate()?;
        Ok(act)
    }
}

/// The fused forward epilogue y = act(α·conv + b + β·z); the bias b and residual z are tensors
/// passed beside it, each optional.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epilogue {
    /// The activation.
    pub activation: Activation,
    /// α, the convolution's scale.
    pub alpha: f32,
    /// β, the residual's scale.
    pub beta: f32,
}

impl Default for Epilogue {
    fn default() -> Self {
        Epilogue {
            activation: Activation::Identity,
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

impl Epilogue {
    /// An epilogue of `activation` with α = β = 1.
    pub fn new(activation: Activation) -> Self {
        Epilogue {
            activation,
            ..Default::default()
        }
    }

    /// Checks the activation's parameters and that α and β are finite.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !v.is_finite() {
                return Err(Error::Epilogue {
                    reason: format!("{name}={v} is not finite"),
                });
            }
        }
        self.activation.validate()
    }

    /// The pre-activation α·c + b + β·z in f64.
    pub fn pre(&self, c: f64, b: f64, z: f64) -> f64 {
        f64::from(self.alpha) * c + b + f64::from(self.beta) * z
    }
}

/// Which tensor of the forward the backward takes act′ from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The forward's output y (for activations whose derivative y determines).
    Output,
    /// The pre-activation α·conv + b + β·z, which the forward writes when asked.
    PreActivation,
}

/// Checks that a `Saved` tensor can give the activation's derivative.
pub fn check_saved(activation: Activation, saved: Saved) -> Result<()> {
    if saved == Saved::Output && !activation.derivative_from_output() {
        return Err(Error::Epilogue {
            reason: format!(
                "the derivative of {activation} is not a function of its output: save the \
                 pre-activation in the forward and pass that"
            ),
        });
    }
    Ok(())
}

/// The bias and residual of an epilogue over a tensor of `channels` planes of `plane` elements
/// each (N·channels·plane elements in all), checked against that shape.
#[derive(Debug, Clone, Copy)]
pub struct Addends<'a> {
    /// The bias, one per channel.
    pub bias: Option<&'a [f32]>,
    /// The residual z, one per element.
    pub residual: Option<&'a [f32]>,
}

/// Applies `epilogue` in place to `y` (N, K, P, Q) holding conv(x, w) without bias: each element
/// becomes act(α·y + b\[k\] + β·z), computed in f64. Writes the pre-activation into `pre` when
/// given. Parallel over planes.
pub fn apply(
    epilogue: &Epilogue,
    y_shape: [usize; 4],
    y: &mut [f32],
    addends: Addends<'_>,
    pre: Option<&mut [f32]>,
) -> Result<()> {
    epilogue.validate()?;
    let [_, k, p, q] = y_shape;
    let plane = p.checked_mul(q).ok_or(Error::TooLarge {
        what: "output plane P·Q".into(),
        value: p as u128 * q as u128,
        limit: usize::MAX as u128,
    })?;
    let len = y.len();
    check_data_len(TensorRole::Output, &y_shape, len)?;
    if let Some(b) = addends.bias {
        check_data_len(TensorRole::Bias, &[k], b.len())?;
    }
    if let Some(z) = addends.residual {
        check_data_len(TensorRole::Residual, &y_shape, z.len())?;
    }
    if let Some(pre) = pre.as_deref() {
        check_data_len(TensorRole::PreActivation, &y_shape, pre.len())?;
    }
    if len == 0 {
        return Ok(());
    }
    let one_plane = |(i, y_plane): (usize, &mut [f32]), pre_plane: Option<&mut [f32]>| {
        let b = addends.bias.map_or(0.0, |b| f64::from(b[i % k]));
        let start = i * plane;
        let z = addends.residual.map(|z| &z[start..start + plane]);
        let mut pre_plane = pre_plane;
        for (j, v) in y_plane.iter_mut().enumerate() {
            let zj = z.map_or(0.0, |z| f64::from(z[j]));
            let pre_v = epilogue.pre(f64::from(*v), b, zj);
            if let Some(pre) = pre_plane.as_deref_mut() {
                pre[j] = pre_v as f32;
            }
            *v = epilogue.activation.apply(pre_v) as f32;
        }
    };
    match pre {
        Some(pre) => y
            .par_chunks_mut(plane)
            .zip(pre.par_chunks_mut(plane))
            .enumerate()
            .for_each(|(i, (y_plane, pre_plane))| one_plane((i, y_plane), Some(pre_plane))),
        None => y
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|item| one_plane(item, None)),
    }
    Ok(())
}

/// The gradient at the pre-activation, scaled: `scale`·dy·act′, act′ taken from `saved` (the
/// forward's output or pre-activation, as `kind` says), in f64. `scale` = 1 gives dpre; α gives
/// the convolution's dY, β the residual's gradient.
pub fn gradient(
    activation: Activation,
    dy: &[f32],
    saved: &[f32],
    kind: Saved,
    scale: f32,
) -> Result<Vec<f32>> {
    activation.validate()?;
    check_saved(activation, kind)?;
    if !scale.is_finite() {
        return Err(Error::Epilogue {
            reason: format!("gradient scale {scale} is not finite"),
        });
    }
    check_data_len(TensorRole::PreActivation, &[dy.len()], saved.len())?;
    let mut out = vec_with_capacity(dy.len(), "epilogue gradient")?;
    out.resize(dy.len(), 0f32);
    let scale = f64::from(scale);
    out.par_chunks_mut(4096)
        .zip(dy.par_chunks(4096).zip(saved.par_chunks(4096)))
        .for_each(|(o, (g, s))| {
            for ((o, &g), &s) in o.iter_mut().zip(g).zip(s) {
                let d = match kind {
                    Saved::Output => activation.derivative_at_output(f64::from(s)),
                    Saved::PreActivation => activation.derivative(f64::from(s)),
                };
                *o = (scale * f64::from(g) * d) as f32;
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for text in [
            "identity",
            "relu",
            "leaky-relu:0.1",
            "relu6",
            "clamp:-1,2.5",
            "gelu",
            "gelu-tanh",
            "silu",
            "sigmoid",
            "tanh",
        ] {
            let act: Activation = text.parse().unwrap();
            assert_eq!(act.to_string(), text);
        }
        for bad in [
            "",
            "relu:1",
            "leaky-relu",
            "clamp:1",
            "clamp:2,1",
            "leaky-relu:nan",
            "swish",
        ] {
            assert!(bad.parse::<Activation>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn derivatives_match_differences() {
        let acts = [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.2 },
            Activation::Relu6,
            Activation::Clamp { lo: -0.5, hi: 1.5 },
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        for act in acts {
            for &v in &[-7.3, -2.0, -0.31, 0.17, 0.9, 2.2, 5.5, 8.1] {
                let h = 1e-6;
                let fd = (act.apply(v + h) - act.apply(v - h)) / (2.0 * h);
                let d = act.derivative(v);
                assert!((fd - d).abs() < 1e-6, "{act} at {v}: {d} vs {fd}");
                if act.derivative_from_output() {
                    let from_y = act.derivative_at_output(act.apply(v));
                    assert!((from_y - d).abs() < 1e-9, "{act} from y at {v}");
                }
            }
        }
    }
}
