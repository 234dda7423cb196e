//! Why the gradient is a convolution, for the user's own problem: every forward sum, every
//! weight gradient and every input gradient written out term by term.
//!
//! The terms come from [`ConvProblem::taps`], the same index arithmetic the reference path
//! computes with, so an explanation cannot disagree with the computation: evaluating its sums
//! reproduces the reference forward, input gradient and weight gradient exactly (tested).
//!
//! Names: inputs X are V, weights W, outputs Y are G, numbered in reading order from 1. A tensor
//! with more than one plane (N or C > 1 for V, K or C/groups > 1 for W, N or K > 1 for G) is
//! named by its 1-based indices instead: V\[n,c,h,w\], W\[k,c,r,s\], G\[n,k,p,q\].

use crate::error::{Error, Result};
use crate::problem::ConvProblem;

mod svg;

pub use svg::{SvgPart, ALL_INPUTS_UP_TO};

/// Largest number of terms (over all three sets of equations) `explain` accepts.
pub const MAX_TERMS: usize = 4096;

/// Which tensor a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensor {
    /// An input element (X).
    V,
    /// A weight (W).
    W,
    /// An output element (Y).
    G,
    /// A bias.
    B,
}

/// An element of one tensor, by flat index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sym {
    /// The tensor.
    pub tensor: Tensor,
    /// Flat index into it.
    pub index: usize,
}

/// `lhs = Σ a·b (+ bias)`. For gradients, `lhs` and each `a` stand for ∂E/∂(symbol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equation {
    /// The element being defined (forward) or differentiated (gradients).
    pub lhs: Sym,
    /// The products, in the order they are summed.
    pub terms: Vec<(Sym, Sym)>,
    /// A bias added first (forward only, when asked).
    pub bias: Option<Sym>,
    /// The terms whose input factor is the padding's zero, left out of the printed sums:
    /// forward, the weights that met padding (`0·W`); weight gradients, the outputs whose window
    /// put this weight on padding (`∂E/∂G·0`). They add nothing to finite sums, but 0·NaN is
    /// NaN, so evaluating the sums includes them, as the computation does.
    pub padding: Vec<Sym>,
}

/// The three sets of equations of one problem.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The problem explained.
    pub problem: ConvProblem,
    /// G = Σ V·W (+ b), one per output element.
    pub forward: Vec<Equation>,
    /// ∂E/∂W = Σ ∂E/∂G·V, one per weight.
    pub weight_grads: Vec<Equation>,
    /// ∂E/∂V = Σ ∂E/∂G·W, one per input element.
    pub input_grads: Vec<Equation>,
}

/// Output format of [`Explanation::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// Plain Unicode text.
    Text,
    /// Markdown with inline code.
    Markdown,
    /// LaTeX `aligned` environments.
    Latex,
}

/// The multiply and differentiation signs per format.
struct Style {
    format: Format,
}

impl Style {
    fn name(&self, pb: &ConvProblem, s: Sym) -> String {
        let (letter, dims, many): (&str, [usize; 4], bool) = match s.tensor {
            Tensor::V => ("V", pb.x_shape(), pb.n > 1 || pb.c > 1),
            Tensor::W => ("W", pb.w_shape(), pb.k > 1 || pb.c_per_group() > 1),
            Tensor::G => ("G", pb.y_shape(), pb.n > 1 || pb.k > 1),
            Tensor::B => ("b", [1, 1, 1, pb.k], false),
        };
        let sub = if many {
            let mut rest = s.index;
            let mut idx = [0usize; 4];
            for d in (0..4).rev() {
                idx[d] = rest % dims[d] + 1;
                rest /= dims[d];
            }
            let joined = idx.map(|i| i.to_string()).join(",");
            match self.format {
                Format::Latex => format!("{{{joined}}}"),
                _ => format!("[{joined}]"),
            }
        } else {
            match self.format {
                Format::Latex => format!("{{{}}}", s.index + 1),
                _ => (s.index + 1).to_string(),
            }
        };
        match self.format {
            Format::Latex => format!("{letter}_{sub}"),
            _ => format!("{letter}{sub}"),
        }
    }

    fn grad(&self, name: &str) -> String {
        match self.format {
            Format::Latex => format!("\\frac{{\\partial E}}{{\\partial {name}}}"),
            _ => format!("∂E/∂{name}"),
        }
    }

    fn times(&self) -> &'static str {
        match self.format {
            Format::Latex => " \\, ",
            _ => "·",
        }
    }
}

impl Explanation {
    /// Builds every equation of `problem` (with `+ b` in the forward sums when `bias`).
    /// Fails beyond [`MAX_TERMS`] terms.
    pub fn new(problem: &ConvProblem, bias: bool) -> Result<Self> {
        let pb = *problem;
        let taps_per_output = pb.c_per_group() * pb.r * pb.s;
        // A cheap bound first, so a huge problem is refused without walking it.
        let bound = pb.y_len() as u128 * taps_per_output as u128;
        let terms = if bound <= 16 * MAX_TERMS as u128 {
            (0..pb.n * pb.k * pb.p * pb.q)
                .map(|i| {
                    let (q, p, k, n) = (
                        i % pb.q,
                        i / pb.q % pb.p,
                        i / (pb.p * pb.q) % pb.k,
                        i / (pb.k * pb.p * pb.q),
                    );
                    pb.taps(n, k, p, q).count()
                })
                .sum::<usize>() as u128
        } else {
            bound
        };
        if terms > MAX_TERMS as u128 || pb.x_len() > MAX_TERMS {
            return Err(Error::ExplainTooLarge {
                x: pb.x_shape(),
                w: pb.w_shape(),
                terms,
                inputs: pb.x_len(),
                limit: MAX_TERMS,
            });
        }
        let sym = |tensor, index| Sym { tensor, index };
        let mut forward = Vec::with_capacity(pb.y_len());
        let mut weight_grads: Vec<Equation> = (0..pb.w_len())
            .map(|i| Equation {
                lhs: sym(Tensor::W, i),
                terms: vec![],
                bias: None,
                padding: vec![],
            })
            .collect();
        let mut input_grads: Vec<Equation> = (0..pb.x_len())
            .map(|i| Equation {
                lhs: sym(Tensor::V, i),
                terms: vec![],
                bias: None,
                padding: vec![],
            })
            .collect();
        for n in 0..pb.n {
            for k in 0..pb.k {
                for p in 0..pb.p {
                    for q in 0..pb.q {
                        let y = pb.y_index(n, k, p, q);
                        let g = sym(Tensor::G, y);
                        let mut terms = Vec::new();
                        for tap in pb.taps(n, k, p, q) {
                            let (v, w) = (sym(Tensor::V, tap.x), sym(Tensor::W, tap.w));
                            terms.push((v, w));
                            weight_grads[tap.w].terms.push((g, v));
                            input_grads[tap.x].terms.push((g, w));
                        }
                        let mut padding = Vec::new();
                        for wi in pb.padding_taps(k, p, q) {
                            padding.push(sym(Tensor::W, wi));
                            weight_grads[wi].padding.push(g);
                        }
                        forward.push(Equation {
                            lhs: g,
                            terms,
                            bias: bias.then_some(sym(Tensor::B, k)),
                            padding,
                        });
                    }
                }
            }
        }
        Ok(Explanation {
            problem: pb,
            forward,
            weight_grads,
            input_grads,
        })
    }

    /// The plain-text name of `sym` as the sums print it (`V7`, `W[1,2,1,1]`).
    pub fn symbol_name(&self, sym: Sym) -> String {
        Style {
            format: Format::Text,
        }
        .name(&self.problem, sym)
    }

    fn line(&self, style: &Style, eq: &Equation, gradient: bool) -> String {
        let pb = &self.problem;
        let name = |s: Sym| style.name(pb, s);
        let lhs = if gradient {
            style.grad(&name(eq.lhs))
        } else {
            name(eq.lhs)
        };
        let mut parts: Vec<String> = eq
            .terms
            .iter()
            .map(|&(a, b)| {
                let a = if gradient {
                    style.grad(&name(a))
                } else {
                    name(a)
                };
                format!("{a}{}{}", style.times(), name(b))
            })
            .collect();
        if let Some(b) = eq.bias {
            parts.push(name(b));
        }
        let rhs = if parts.is_empty() {
            "0".to_string()
        } else {
            parts.join(" + ")
        };
        match style.format {
            Format::Latex => format!("{lhs} &= {rhs}"),
            _ => format!("{lhs} = {rhs}"),
        }
    }

    /// The forward lines, e.g. `G1 = V1·W1 + V2·W2 + V4·W3 + V5·W4`.
    pub fn forward_lines(&self, format: Format) -> Vec<String> {
        let style = Style { format };
        self.forward
            .iter()
            .map(|e| self.line(&style, e, false))
            .collect()
    }

    /// The weight-gradient lines, e.g. `∂E/∂W1 = ∂E/∂G1·V1 + ∂E/∂G2·V2 + ∂E/∂G3·V4 + ∂E/∂G4·V5`.
    pub fn weight_grad_lines(&self, format: Format) -> Vec<String> {
        let style = Style { format };
        self.weight_grads
            .iter()
            .map(|e| self.line(&style, e, true))
            .collect()
    }

    /// The input-gradient lines, e.g. `∂E/∂V5 = ∂E/∂G1·W4 + ∂E/∂G2·W3 + ∂E/∂G3·W2 + ∂E/∂G4·W1`.
    pub fn input_grad_lines(&self, format: Format) -> Vec<String> {
        let style = Style { format };
        self.input_grads
            .iter()
            .map(|e| self.line(&style, e, true))
            .collect()
    }

    /// The whole derivation in `format`.
    pub fn render(&self, format: Format) -> String {
        let pb = &self.problem;
        let prm = &pb.params;
        let summary = format!(
            "X {:?} * W {:?} -> Y {:?}; stride {:?}, padding [top,left,bottom,right] {:?}, dilation {:?}, groups {}",
            pb.x_shape(),
            pb.w_shape(),
            pb.y_shape(),
            prm.stride,
            prm.padding,
            prm.dilation,
            prm.groups
        );
        let naming = "V = inputs X, W = weights, G = outputs Y, numbered in reading order from 1 \
                      (1-based [n,c,h,w] indices where a tensor has several planes); E is the loss.";
        let sections = [
            (
                "Forward: each output sums input·weight over its window (padding terms omitted)",
                self.forward_lines(format),
            ),
            (
                "Weight gradients: a weight is shared by every output position, so its gradient sums one term per position: that output's gradient times the input pixel that met the weight there",
                self.weight_grad_lines(format),
            ),
            (
                "Input gradients: each input collects ∂E/∂G·W from every output window that covered it; the same sums are ∂E/∂G, spread onto the stride grid and padded, convolved with the flipped kernel (the full-convolution view: explain --svg FILE --svg-part full)",
                self.input_grad_lines(format),
            ),
        ];
        let closing = format!(
            "So ∂E/∂X is the convolution of ∂E/∂G with the kernel flipped by 180° (\"full\" padding{}), and ∂E/∂W is the convolution of X with ∂E/∂G.",
            if prm.stride != [1, 1] {
                format!(", with {}-1 zeros inserted between the ∂E/∂G entries for stride {:?}", prm.stride.iter().max().unwrap(), prm.stride)
            } else {
                String::new()
            }
        );
        let mut out = String::new();
        match format {
            Format::Text => {
                out += &format!("Problem: {summary}\nNames: {naming}\n");
                for (title, lines) in sections {
                    out += &format!("\n{title}:\n");
                    for l in lines {
                        out += &format!("  {l}\n");
                    }
                }
                out += &format!("\n{closing}\n");
            }
            Format::Markdown => {
                out += &format!("**Problem:** `{summary}`\n\n{naming}\n");
                for (title, lines) in sections {
                    out += &format!("\n### {title}\n\n");
                    for l in lines {
                        out += &format!("- `{l}`\n");
                    }
                }
                out += &format!("\n{closing}\n");
            }
            Format::Latex => {
                out += &format!("% gpuconv explain: {summary}\n");
                for (title, lines) in sections {
                    out += &format!("% {title}\n\\begin{{aligned}}\n");
                    let n = lines.len();
                    for (i, l) in lines.into_iter().enumerate() {
                        out += &format!("  {l}{}\n", if i + 1 < n { " \\\\" } else { "" });
                    }
                    out += "\\end{aligned}\n";
                }
                out += &format!("% {closing}\n");
            }
        }
        out
    }

    /// Evaluates the forward sums (f64, in the printed order) on the given values.
    pub fn eval_forward(&self, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        self.forward
            .iter()
            .map(|e| {
                let start = match (e.bias, b) {
                    (Some(s), Some(b)) => b[s.index],
                    _ => 0.0,
                };
                let sum = e
                    .terms
                    .iter()
                    .fold(start, |acc, (v, w_)| acc + x[v.index] * w[w_.index]);
                e.padding
                    .iter()
                    .fold(sum, |acc, w_| acc + 0.0 * w[w_.index])
            })
            .collect()
    }

    /// Evaluates the weight-gradient sums on dY and X.
    pub fn eval_weight_grad(&self, dy: &[f64], x: &[f64]) -> Vec<f64> {
        self.weight_grads
            .iter()
            .map(|e| {
                let sum = e
                    .terms
                    .iter()
                    .fold(0.0, |acc, (g, v)| acc + dy[g.index] * x[v.index]);
                e.padding.iter().fold(sum, |acc, g| acc + dy[g.index] * 0.0)
            })
            .collect()
    }

    /// Evaluates the input-gradient sums on dY and W.
    pub fn eval_input_grad(&self, dy: &[f64], w: &[f64]) -> Vec<f64> {
        self.input_grads
            .iter()
            .map(|e| {
                e.terms
                    .iter()
                    .fold(0.0, |acc, (g, w_)| acc + dy[g.index] * w[w_.index])
            })
            .collect()
    }
}
