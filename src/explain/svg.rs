//! The pictures, hand-written SVG, for the first image (n = 0):
//! - **weights**: the input plane with its padding ring hatched, the kernel and the output; then
//!   one panel per weight that colours the inputs it met by the output they fed, and outlines the
//!   padding cells where it met only padding (terms left out of the sums);
//! - **inputs**: one panel per selected input: the ∂E/∂G planes its gradient collects from, each
//!   reached cell coloured like that output everywhere else and labelled with the weight that
//!   joined them;
//! - **full**: ∂E/∂G spread onto the stride grid (holes left empty) and padded by (R−1)·dh and
//!   (S−1)·dw, with the flipped kernel placed at one input; the cells it covers that hold a
//!   gradient are that input's ∂E/∂V sum, written underneath.
//!
//! Every highlighted cell carries `data-g` and `data-w` (the output and weight names), so tests
//! check the pictures against the equations.

use super::{Explanation, Format, Style, Sym, Tensor};
use crate::error::{Error, Result};

const CELL: f64 = 22.0;
/// Cells of the full-convolution view: two label lines.
const BIG: f64 = 30.0;
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#86bcb6", "#d37295",
];
/// Drawings wider than this wrap their panels onto new rows.
const PAGE: f64 = 900.0;
/// Inputs drawn by default when the first image has more than [`ALL_INPUTS_UP_TO`].
const DEFAULT_INPUTS: usize = 8;
/// Up to this many inputs in the first image (a 6×6 plane), every one gets a panel.
pub const ALL_INPUTS_UP_TO: usize = 36;

/// Which drawing [`Explanation::svg_part`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum SvgPart {
    /// The weight panels: which inputs each weight met.
    Weights,
    /// The input panels: which outputs' gradients reach each input, through which weight.
    Inputs,
    /// The full-convolution view of one input's gradient.
    Full,
    /// All three, one under the other.
    #[default]
    All,
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How one cell looks.
#[derive(Default)]
struct Cell {
    fill: Option<&'static str>,
    hatched: bool,
    /// A thick outline in this colour.
    outline: Option<&'static str>,
    dashed: bool,
    lines: Vec<String>,
    grey_text: bool,
    class: Option<&'static str>,
    data: Vec<(&'static str, String)>,
}

/// An SVG under construction: the body, and the extent drawn so far.
struct Canvas {
    body: String,
    right: f64,
    bottom: f64,
}

impl Canvas {
    fn text(&mut self, x: f64, y: f64, size: f64, s: &str) {
        self.body += &format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\">{}</text>\n",
            escape(s)
        );
        self.right = self.right.max(x + s.chars().count() as f64 * size * 0.55);
        self.bottom = self.bottom.max(y + 4.0);
    }

    fn cell(&mut self, x: f64, y: f64, size: f64, c: &Cell) {
        let fill = if c.hatched {
            "url(#hatch)"
        } else {
            c.fill.unwrap_or("#fff")
        };
        let mut attrs = String::new();
        if let Some(class) = c.class {
            attrs += &format!(" class=\"{class}\"");
        }
        for (k, v) in &c.data {
            attrs += &format!(" data-{k}=\"{}\"", escape(v));
        }
        let (stroke, width) = match c.outline {
            Some(o) => (o, 2.4),
            None => ("#555", 0.6),
        };
        let dash = if c.dashed {
            " stroke-dasharray=\"3,2\""
        } else {
            ""
        };
        let inset = if c.outline.is_some() { 1.2 } else { 0.0 };
        self.body += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}{attrs}/>",
            x + inset,
            y + inset,
            size - 2.0 * inset,
            size - 2.0 * inset
        );
        let n = c.lines.len() as f64;
        for (i, line) in c.lines.iter().enumerate() {
            let ty = y + size / 2.0 + 3.0 + (i as f64 - (n - 1.0) / 2.0) * 9.0;
            self.body += &format!(
                "<text x=\"{:.1}\" y=\"{ty:.1}\" font-size=\"7.5\" text-anchor=\"middle\"{}>{}</text>",
                x + size / 2.0,
                if c.grey_text { " fill=\"#777\"" } else { "" },
                escape(line)
            );
        }
        self.body += "\n";
        self.right = self.right.max(x + size);
        self.bottom = self.bottom.max(y + size);
    }

    /// A rows × cols grid at (x, y) under `title`; `cell(row, col)` draws each.
    fn grid(
        &mut self,
        (x, y): (f64, f64),
        (rows, cols): (usize, usize),
        size: f64,
        title: &str,
        cell: impl Fn(usize, usize) -> Cell,
    ) {
        self.text(x, y - 5.0, 11.0, title);
        for i in 0..rows {
            for j in 0..cols {
                self.cell(x + j as f64 * size, y + i as f64 * size, size, &cell(i, j));
            }
        }
    }
}

/// Lays out panels of one size left to right, wrapping at the page width.
struct Flow {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    per_row: usize,
}

impl Flow {
    fn new(y0: f64, w: f64, h: f64) -> Flow {
        Flow {
            x0: 20.0,
            y0,
            w,
            h,
            per_row: ((PAGE / w).floor() as usize).max(1),
        }
    }

    fn at(&self, i: usize) -> (f64, f64) {
        (
            self.x0 + (i % self.per_row) as f64 * self.w,
            self.y0 + (i / self.per_row) as f64 * self.h,
        )
    }
}

impl Explanation {
    fn plain_name(&self, tensor: Tensor, index: usize) -> String {
        self.symbol_name(Sym { tensor, index })
    }

    /// The inputs of the first image the input panels show by default: all of them up to
    /// [`ALL_INPUTS_UP_TO`], else the first few.
    pub fn default_inputs(&self) -> Vec<usize> {
        let pb = &self.problem;
        let image = pb.c * pb.h * pb.w;
        let count = if image <= ALL_INPUTS_UP_TO {
            image
        } else {
            DEFAULT_INPUTS
        };
        (0..count).collect()
    }

    /// The flat index of the input named `name` as the sums print it (`V7`, or `V[1,2,3,4]`
    /// where X has several planes), which must be in the first image.
    pub fn input_index(&self, name: &str) -> Result<usize> {
        let pb = &self.problem;
        let wanted = name.trim();
        (0..pb.c * pb.h * pb.w)
            .find(|&i| self.plain_name(Tensor::V, i) == wanted)
            .ok_or_else(|| Error::InvalidSetting {
                name: "--inputs",
                value: name.to_string(),
                expected: "input names of the first image as the sums print them (V1, V7, … or V[1,c,h,w])",
            })
    }

    /// The whole picture: weights, inputs (the default selection) and the full view.
    pub fn svg(&self) -> String {
        self.svg_part(SvgPart::All, &self.default_inputs())
    }

    /// The input the full-convolution view shows: of `inputs`, the first with the most terms.
    pub fn full_view_input(&self, inputs: &[usize]) -> Option<usize> {
        let image = self.problem.c * self.problem.h * self.problem.w;
        inputs
            .iter()
            .copied()
            .filter(|&v| v < image)
            .rev()
            .max_by_key(|&v| self.input_grads[v].terms.len())
    }

    /// One part of the picture (or all), with input panels for `inputs` (flat indices into
    /// the first image); the full-convolution view shows [`Explanation::full_view_input`].
    pub fn svg_part(&self, part: SvgPart, inputs: &[usize]) -> String {
        let pb = &self.problem;
        let inputs: Vec<usize> = inputs
            .iter()
            .copied()
            .filter(|&i| i < pb.c * pb.h * pb.w)
            .collect();
        let mut cv = Canvas {
            body: String::new(),
            right: 620.0,
            bottom: 0.0,
        };
        cv.text(
            20.0,
            18.0,
            13.0,
            &format!(
                "gpuconv explain: X {:?} * W {:?} -> Y {:?}",
                pb.x_shape(),
                pb.w_shape(),
                pb.y_shape()
            ),
        );
        cv.text(
            20.0,
            34.0,
            11.0,
            &format!(
                "stride {:?}, padding [top,left,bottom,right] {:?}, dilation {:?}, groups {}; image n=1; hatched cells are padding",
                pb.params.stride, pb.params.padding, pb.params.dilation, pb.params.groups
            ),
        );
        let mut y = 60.0;
        if matches!(part, SvgPart::Weights | SvgPart::All) {
            y = self.weights_part(&mut cv, y) + 30.0;
        }
        if matches!(part, SvgPart::Inputs | SvgPart::All) {
            y = self.inputs_part(&mut cv, y, &inputs) + 30.0;
        }
        if matches!(part, SvgPart::Full | SvgPart::All) {
            if let Some(v) = self.full_view_input(&inputs) {
                self.full_part(&mut cv, y, v);
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" font-family=\"sans-serif\">\n\
             <defs><pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"5\" height=\"5\" patternTransform=\"rotate(45)\"><rect width=\"5\" height=\"5\" fill=\"#f3f3f3\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"5\" stroke=\"#aaa\" stroke-width=\"1.6\"/></pattern></defs>\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            cv.right + 20.0,
            cv.bottom + 20.0,
            cv.body
        )
    }

    /// The padded input plane of channel `c` in image 0, `cell(h, w)` for real pixels and
    /// hatched padding around them.
    fn padded_plane(
        &self,
        cv: &mut Canvas,
        at: (f64, f64),
        title: &str,
        cell: impl Fn(usize, usize) -> Cell,
        pad_cell: impl Fn(i64, i64) -> Cell,
    ) {
        let pb = &self.problem;
        let [top, left, bottom, right] = pb.params.padding;
        cv.grid(
            at,
            (top + pb.h + bottom, left + pb.w + right),
            CELL,
            title,
            |i, j| {
                let (h, w) = (i as i64 - top as i64, j as i64 - left as i64);
                if h >= 0 && w >= 0 && (h as usize) < pb.h && (w as usize) < pb.w {
                    cell(h as usize, w as usize)
                } else {
                    Cell {
                        hatched: true,
                        ..pad_cell(h, w)
                    }
                }
            },
        );
    }

    /// The top row and one panel per weight; returns the bottom.
    fn weights_part(&self, cv: &mut Canvas, y0: f64) -> f64 {
        let pb = &self.problem;
        let [top, left, bottom, right] = pb.params.padding;
        let (rows, cols) = (top + pb.h + bottom, left + pb.w + right);
        let (p, q, r, s) = (pb.p, pb.q, pb.r, pb.s);
        let name = |t: Tensor, i: usize| self.plain_name(t, i);
        cv.text(
            20.0,
            y0,
            12.0,
            "Weights: each panel colours the inputs a weight met by the output they fed; an outlined hatched cell is padding it met (a term left out of the sums)",
        );
        let y0 = y0 + 25.0;
        let labelled = |t: Tensor, i: usize| Cell {
            lines: vec![name(t, i)],
            ..Cell::default()
        };
        self.padded_plane(
            cv,
            (20.0, y0),
            "input V (channel 1)",
            |h, w| labelled(Tensor::V, pb.x_index(0, 0, h, w)),
            |_, _| Cell::default(),
        );
        let kx = 20.0 + (cols as f64 * CELL).max(90.0) + 30.0;
        cv.grid((kx, y0), (r, s), CELL, "kernel W (1st)", |i, j| Cell {
            fill: Some("#eee"),
            ..labelled(Tensor::W, pb.w_index(0, 0, i, j))
        });
        let ox = kx + (s as f64 * CELL).max(90.0) + 30.0;
        cv.grid((ox, y0), (p, q), CELL, "output G (channel 1)", |i, j| {
            Cell {
                fill: Some(colour(i * q + j)),
                ..labelled(Tensor::G, pb.y_index(0, 0, i, j))
            }
        });
        let top_h = (rows.max(p).max(r) as f64) * CELL + 45.0;
        let flow = Flow::new(
            y0 + top_h,
            (cols as f64 * CELL).max(110.0) + 30.0,
            rows as f64 * CELL + 40.0,
        );
        let plane = p * q;
        for (wi, eq) in self.weight_grads.iter().enumerate() {
            let at = flow.at(wi);
            let k = wi / (pb.c_per_group() * r * s);
            let c = pb.group_of_output(k) * pb.c_per_group() + wi / (r * s) % pb.c_per_group();
            let plane_start = pb.x_index(0, c, 0, 0);
            // The inputs it met in image 0, and the output each fed.
            let met: Vec<(usize, usize)> = eq
                .terms
                .iter()
                .filter(|(g, v)| {
                    g.index < pb.k * plane
                        && (plane_start..plane_start + pb.h * pb.w).contains(&v.index)
                })
                .map(|(g, v)| (v.index - plane_start, g.index))
                .collect();
            // The padding cells it met, by the output whose window put it there.
            let (rr, ss) = (wi / s % r, wi % s);
            let padded: Vec<((i64, i64), usize)> = eq
                .padding
                .iter()
                .filter(|g| g.index < pb.k * plane)
                .map(|g| {
                    let (pp, qq) = (g.index % plane / q, g.index % q);
                    let ih =
                        (pp * pb.params.stride[0] + rr * pb.params.dilation[0]) as i64 - top as i64;
                    let iw = (qq * pb.params.stride[1] + ss * pb.params.dilation[1]) as i64
                        - left as i64;
                    ((ih, iw), g.index)
                })
                .collect();
            let wname = name(Tensor::W, wi);
            cv.body += &format!(
                "<g class=\"weight-panel\" data-weight=\"{}\">\n",
                escape(&wname)
            );
            self.padded_plane(
                cv,
                at,
                &format!("{wname} met:"),
                |h, w| match met.iter().find(|(v, _)| *v == h * pb.w + w) {
                    Some(&(_, g)) => Cell {
                        fill: Some(colour(g % plane)),
                        lines: vec![format!("→{}", name(Tensor::G, g))],
                        class: Some("hit"),
                        data: vec![
                            ("g", name(Tensor::G, g)),
                            ("v", name(Tensor::V, plane_start + h * pb.w + w)),
                        ],
                        ..Cell::default()
                    },
                    None => Cell::default(),
                },
                |h, w| match padded.iter().find(|(at, _)| *at == (h, w)) {
                    Some(&(_, g)) => Cell {
                        outline: Some(colour(g % plane)),
                        lines: vec![format!("0 {}", name(Tensor::G, g))],
                        class: Some("pad-hit"),
                        data: vec![("g", name(Tensor::G, g))],
                        ..Cell::default()
                    },
                    None => Cell::default(),
                },
            );
            cv.body += "</g>\n";
        }
        cv.bottom
    }

    /// One panel per selected input: the ∂E/∂G planes of its group, the cells whose gradient
    /// reaches it coloured and labelled with the joining weight. Returns the bottom.
    fn inputs_part(&self, cv: &mut Canvas, y0: f64, inputs: &[usize]) -> f64 {
        let pb = &self.problem;
        let (p, q) = (pb.p, pb.q);
        let name = |t: Tensor, i: usize| self.plain_name(t, i);
        let image = pb.c * pb.h * pb.w;
        cv.text(
            20.0,
            y0,
            12.0,
            &format!(
                "Inputs: each panel shows the outputs whose gradient ∂E/∂G reaches one input, labelled with the weight that joined them{}",
                if inputs.len() < image {
                    format!(" ({} of {} inputs; choose with --inputs)", inputs.len(), image)
                } else {
                    String::new()
                }
            ),
        );
        let kg = pb.k_per_group();
        let grid_w = (q as f64 * CELL).max(60.0) + 12.0;
        let flow = Flow::new(y0 + 30.0, kg as f64 * grid_w + 30.0, p as f64 * CELL + 40.0);
        for (slot, &v) in inputs.iter().enumerate() {
            let (x, y) = flow.at(slot);
            let c = v / (pb.h * pb.w);
            let g0 = c / pb.c_per_group() * kg;
            let vname = name(Tensor::V, v);
            cv.body += &format!(
                "<g class=\"input-panel\" data-input=\"{}\">\n",
                escape(&vname)
            );
            cv.text(x, y - 5.0, 11.0, &format!("∂E/∂{vname} collects:"));
            for j in 0..kg {
                let k = g0 + j;
                let title = if pb.k > 1 {
                    format!("G channel {}", k + 1)
                } else {
                    String::new()
                };
                cv.grid(
                    (x + j as f64 * grid_w, y + 12.0),
                    (p, q),
                    CELL,
                    &title,
                    |pp, qq| {
                        let g = pb.y_index(0, k, pp, qq);
                        match self.input_grads[v]
                            .terms
                            .iter()
                            .find(|(gs, _)| gs.index == g)
                        {
                            Some(&(_, w)) => Cell {
                                fill: Some(colour(pp * q + qq)),
                                lines: vec![format!("·{}", name(Tensor::W, w.index))],
                                class: Some("hit"),
                                data: vec![
                                    ("g", name(Tensor::G, g)),
                                    ("w", name(Tensor::W, w.index)),
                                ],
                                ..Cell::default()
                            },
                            None => Cell::default(),
                        }
                    },
                );
            }
            cv.body += "</g>\n";
        }
        cv.bottom
    }

    /// The full-convolution view of input `v`'s gradient. Returns the bottom.
    fn full_part(&self, cv: &mut Canvas, y0: f64, v: usize) {
        let pb = &self.problem;
        let name = |t: Tensor, i: usize| self.plain_name(t, i);
        let [sh, sw] = pb.params.stride;
        let [dh, dw] = pb.params.dilation;
        let [top, left, _, _] = pb.params.padding;
        let (c, h, w) = (v / (pb.h * pb.w), v / pb.w % pb.h, v % pb.w);
        // ∂E/∂G on the stride grid, then the kernel's reach on every side.
        let (ext_h, ext_w) = ((pb.p - 1) * sh + 1, (pb.q - 1) * sw + 1);
        let (pad_h, pad_w) = ((pb.r - 1) * dh, (pb.s - 1) * dw);
        let rows = (2 * pad_h + ext_h).max(h + top + pad_h + 1);
        let cols = (2 * pad_w + ext_w).max(w + left + pad_w + 1);
        let vname = name(Tensor::V, v);
        cv.text(
            20.0,
            y0,
            12.0,
            &format!(
                "Full convolution: ∂E/∂G {}, padded by (R−1)·dh = {pad_h} and (S−1)·dw = {pad_w}, times the kernel flipped by 180° placed at {vname}",
                if [sh, sw] == [1, 1] {
                    "(stride 1: no holes)".to_string()
                } else {
                    format!("with stride − 1 empty cells between entries (stride {:?})", pb.params.stride)
                }
            ),
        );
        let kg = pb.k_per_group();
        let g0 = c / pb.c_per_group() * kg;
        let cg = c % pb.c_per_group();
        let grid_w = cols as f64 * BIG + 30.0;
        let flow = Flow::new(y0 + 35.0, grid_w, rows as f64 * BIG + 40.0);
        cv.body += &format!(
            "<g class=\"full-view\" data-input=\"{}\">\n",
            escape(&vname)
        );
        for j in 0..kg {
            let k = g0 + j;
            // The flipped kernel's top-left sits at (h + top, w + left): flipped tap (r', s')
            // covers (h + top + r'·dh, w + left + s'·dw) and carries W[k, cg, R−1−r', S−1−s'].
            let tap_at = |i: usize, jj: usize| -> Option<usize> {
                let (di, dj) = (i.checked_sub(h + top)?, jj.checked_sub(w + left)?);
                if di % dh != 0 || dj % dw != 0 || di / dh >= pb.r || dj / dw >= pb.s {
                    return None;
                }
                Some(pb.w_index(k, cg, pb.r - 1 - di / dh, pb.s - 1 - dj / dw))
            };
            let title = format!(
                "∂E/∂G{} spread and padded; flipped W{} at {vname}",
                if pb.k > 1 {
                    format!(" channel {}", k + 1)
                } else {
                    String::new()
                },
                if pb.k > 1 || pb.c_per_group() > 1 {
                    format!(" [{},{},·,·]", k + 1, cg + 1)
                } else {
                    String::new()
                }
            );
            cv.grid(flow.at(j), (rows, cols), BIG, &title, |i, jj| {
                let tap = tap_at(i, jj);
                let inside = i >= pad_h && jj >= pad_w && i - pad_h < ext_h && jj - pad_w < ext_w;
                let grad = (inside && (i - pad_h) % sh == 0 && (jj - pad_w) % sw == 0)
                    .then(|| pb.y_index(0, k, (i - pad_h) / sh, (jj - pad_w) / sw));
                let mut cell = match grad {
                    Some(g) => Cell {
                        fill: Some("#e8eef6"),
                        lines: vec![name(Tensor::G, g)],
                        ..Cell::default()
                    },
                    // A stride hole: empty. Outside: the full convolution's padding.
                    None if inside => Cell::default(),
                    None => Cell {
                        hatched: true,
                        ..Cell::default()
                    },
                };
                if let Some(wi) = tap {
                    let wname = name(Tensor::W, wi);
                    match grad {
                        Some(g) => {
                            cell.fill = Some(colour(g % (pb.p * pb.q)));
                            cell.hatched = false;
                            cell.outline = Some("#222");
                            cell.lines.push(format!("·{wname}"));
                            cell.class = Some("hit");
                            cell.data = vec![("g", name(Tensor::G, g)), ("w", wname)];
                        }
                        None => {
                            cell.outline = Some("#777");
                            cell.dashed = true;
                            cell.grey_text = true;
                            cell.lines = vec![format!("0·{wname}")];
                            cell.class = Some("miss");
                        }
                    }
                }
                cell
            });
        }
        cv.body += "</g>\n";
        let sum = self.line(
            &Style {
                format: Format::Text,
            },
            &self.input_grads[v],
            true,
        );
        cv.text(
            20.0,
            cv.bottom + 20.0,
            12.0,
            &format!(
                "{sum}   (the outlined cells holding a gradient; the dashed ones multiply zeros)"
            ),
        );
    }
}
