//! The weight-sharing picture: input grid, kernel, output grid, and one panel per weight that
//! highlights the input pixels it met, coloured like the outputs they fed. Hand-written SVG.

use super::{Explanation, Tensor};

const CELL: f64 = 22.0;
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#86bcb6", "#d37295",
];

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A rows×cols grid at (x, y); `fill(i)` gives each cell's colour and label (row-major i).
fn grid(
    out: &mut String,
    x: f64,
    y: f64,
    rows: usize,
    cols: usize,
    title: &str,
    fill: impl Fn(usize) -> (Option<&'static str>, String),
) {
    *out += &format!(
        "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>\n",
        y - 5.0,
        escape(title)
    );
    for i in 0..rows * cols {
        let (cx, cy) = (x + (i % cols) as f64 * CELL, y + (i / cols) as f64 * CELL);
        let (fill_colour, label) = fill(i);
        *out += &format!(
            "<rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"{}\" stroke=\"#555\" stroke-width=\"0.6\"/>",
            fill_colour.unwrap_or("#fff")
        );
        if !label.is_empty() {
            *out += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"7.5\" text-anchor=\"middle\">{}</text>",
                cx + CELL / 2.0,
                cy + CELL / 2.0 + 3.0,
                escape(&label)
            );
        }
        *out += "\n";
    }
}

impl Explanation {
    /// The picture as a standalone SVG document, for the first image (n = 0). One panel per weight
    /// (class `weight-panel`), showing the input plane of that weight's channel.
    pub fn svg(&self) -> String {
        let pb = &self.problem;
        let plain = super::Style {
            format: super::Format::Text,
        };
        let name = |t: Tensor, index: usize| plain.name(pb, super::Sym { tensor: t, index });
        let (h, w, p, q, r, s) = (pb.h, pb.w, pb.p, pb.q, pb.r, pb.s);
        let panel_w = (w as f64 * CELL).max(110.0) + 30.0;
        let per_row = ((900.0 / panel_w).floor() as usize).max(1);
        let panels = pb.w_len();
        let top_h = (h.max(p).max(r) as f64) * CELL + 70.0;
        let panel_h = h as f64 * CELL + 40.0;
        let width = (per_row as f64 * panel_w)
            .max(3.0 * (w.max(q) as f64 * CELL).max(90.0) + 120.0)
            .max(620.0)
            + 40.0;
        let height = 40.0 + top_h + panels.div_ceil(per_row) as f64 * panel_h + 20.0;
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"20\" y=\"18\" font-size=\"13\">{}</text>\n\
             <text x=\"20\" y=\"34\" font-size=\"11\">{}</text>\n",
            escape(&format!("gpuconv explain: X {:?} * W {:?} -> Y {:?}", pb.x_shape(), pb.w_shape(), pb.y_shape())),
            escape(&format!(
                "stride {:?}, padding {:?}, dilation {:?}, groups {}; image n=1; each weight's panel colours the inputs it met by the output they fed",
                pb.params.stride, pb.params.padding, pb.params.dilation, pb.params.groups
            ))
        );
        // Top row: the first input plane, the first kernel, the first output plane (colours = outputs).
        let y0 = 60.0;
        grid(&mut out, 20.0, y0, h, w, "input V (channel 1)", |i| {
            (None, name(Tensor::V, i))
        });
        let kx = 20.0 + (w as f64 * CELL).max(90.0) + 30.0;
        grid(&mut out, kx, y0, r, s, "kernel W (1st)", |i| {
            (Some("#eee"), name(Tensor::W, i))
        });
        let ox = kx + (s as f64 * CELL).max(90.0) + 30.0;
        grid(&mut out, ox, y0, p, q, "output G (channel 1)", |i| {
            (Some(colour(i)), name(Tensor::G, i))
        });
        // One panel per weight: the inputs it met in image 0, coloured by the output they fed.
        for (wi, eq) in self.weight_grads.iter().enumerate() {
            let (px, py) = (
                20.0 + (wi % per_row) as f64 * panel_w,
                y0 + top_h + (wi / per_row) as f64 * panel_h,
            );
            let k = wi / (pb.c_per_group() * r * s);
            let c = pb.group_of_output(k) * pb.c_per_group() + wi / (r * s) % pb.c_per_group();
            let plane_start = pb.x_index(0, c, 0, 0);
            let met: Vec<(usize, usize)> = eq
                .terms
                .iter()
                .filter(|(g, v)| {
                    g.index < pb.k * p * q
                        && v.index >= plane_start
                        && v.index < plane_start + h * w
                })
                .map(|(g, v)| (v.index - plane_start, g.index))
                .collect();
            out += &format!(
                "<g class=\"weight-panel\" data-weight=\"{}\">\n",
                escape(&name(Tensor::W, wi))
            );
            grid(
                &mut out,
                px,
                py,
                h,
                w,
                &format!("{} met:", name(Tensor::W, wi)),
                |i| match met.iter().find(|(v, _)| *v == i) {
                    Some(&(_, g)) => (
                        Some(colour(g % (p * q))),
                        format!("→{}", name(Tensor::G, g)),
                    ),
                    None => (None, String::new()),
                },
            );
            out += "</g>\n";
        }
        out += "</svg>\n";
        out
    }
}
