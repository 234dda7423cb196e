//! `explain`: golden lines for the classic example, sums that reproduce the reference exactly,
//! and a well-formed SVG with one panel per weight.

mod common;

use common::SplitMix64;
use gpuconv::cpu::reference;
use gpuconv::explain::{Explanation, Format, SvgPart};
use gpuconv::{ConvParams, ConvProblem};

fn classic() -> Explanation {
    let pb = ConvProblem::new(&[1, 1, 3, 3], &[1, 1, 2, 2], ConvParams::default()).unwrap();
    Explanation::new(&pb, false).unwrap()
}

#[test]
fn classic_example_lines_are_the_hand_derived_ones() {
    let ex = classic();
    assert_eq!(
        ex.forward_lines(Format::Text),
        [
            "G1 = V1·W1 + V2·W2 + V4·W3 + V5·W4",
            "G2 = V2·W1 + V3·W2 + V5·W3 + V6·W4",
            "G3 = V4·W1 + V5·W2 + V7·W3 + V8·W4",
            "G4 = V5·W1 + V6·W2 + V8·W3 + V9·W4",
        ]
    );
    assert_eq!(
        ex.weight_grad_lines(Format::Text),
        [
            "∂E/∂W1 = ∂E/∂G1·V1 + ∂E/∂G2·V2 + ∂E/∂G3·V4 + ∂E/∂G4·V5",
            "∂E/∂W2 = ∂E/∂G1·V2 + ∂E/∂G2·V3 + ∂E/∂G3·V5 + ∂E/∂G4·V6",
            "∂E/∂W3 = ∂E/∂G1·V4 + ∂E/∂G2·V5 + ∂E/∂G3·V7 + ∂E/∂G4·V8",
            "∂E/∂W4 = ∂E/∂G1·V5 + ∂E/∂G2·V6 + ∂E/∂G3·V8 + ∂E/∂G4·V9",
        ]
    );
    assert_eq!(
        ex.input_grad_lines(Format::Text),
        [
            "∂E/∂V1 = ∂E/∂G1·W1",
            "∂E/∂V2 = ∂E/∂G1·W2 + ∂E/∂G2·W1",
            "∂E/∂V3 = ∂E/∂G2·W2",
            "∂E/∂V4 = ∂E/∂G1·W3 + ∂E/∂G3·W1",
            "∂E/∂V5 = ∂E/∂G1·W4 + ∂E/∂G2·W3 + ∂E/∂G3·W2 + ∂E/∂G4·W1",
            "∂E/∂V6 = ∂E/∂G2·W4 + ∂E/∂G4·W2",
            "∂E/∂V7 = ∂E/∂G3·W3",
            "∂E/∂V8 = ∂E/∂G3·W4 + ∂E/∂G4·W3",
            "∂E/∂V9 = ∂E/∂G4·W4",
        ]
    );
    let text = ex.render(Format::Text);
    assert!(text.contains("flipped"), "{text}");
    let latex = ex.render(Format::Latex);
    assert!(latex.contains("\\frac{\\partial E}{\\partial W_{1}} &= \\frac{\\partial E}{\\partial G_{1}} \\, V_{1}"), "{latex}");
    assert!(ex
        .render(Format::Markdown)
        .contains("- `G1 = V1·W1 + V2·W2 + V4·W3 + V5·W4`"));
}

#[test]
fn printed_sums_reproduce_the_reference_exactly() {
    let mut rng = SplitMix64::new(0xe4_01a1);
    let p = ConvParams::default;
    let problems = [
        (
            vec![1, 1, 5, 5],
            vec![1, 1, 3, 3],
            p().stride(2, 2).padding(1, 1),
        ),
        (
            vec![2, 2, 5, 4],
            vec![3, 2, 2, 3],
            p().dilation(2, 1).padding_tlbr(1, 0, 0, 2),
        ),
        (
            vec![1, 4, 6, 5],
            vec![4, 2, 3, 2],
            p().groups(2).stride(1, 2).padding(1, 1),
        ),
        (
            vec![2, 3, 6, 6],
            vec![6, 1, 3, 3],
            p().groups(3).stride(3, 2).dilation(1, 2).padding(2, 1),
        ),
    ];
    for (xs, ws, params) in problems {
        let pb = ConvProblem::new(&xs, &ws, params).unwrap();
        let ex = Explanation::new(&pb, true).unwrap();
        let (x, w, b, dy) = (
            rng.tensor(pb.x_len()),
            rng.tensor(pb.w_len()),
            rng.tensor(pb.k),
            rng.tensor(pb.y_len()),
        );
        let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let narrow = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
        let fwd = narrow(ex.eval_forward(&wide(&x), &wide(&w), Some(&wide(&b))));
        assert_eq!(
            fwd,
            reference::forward(&pb, &x, &w, Some(&b)).unwrap(),
            "forward {pb:?}"
        );
        let dw = narrow(ex.eval_weight_grad(&wide(&dy), &wide(&x)));
        assert_eq!(
            dw,
            reference::weight_grad(&pb, &dy, &x).unwrap(),
            "weight grad {pb:?}"
        );
        let dx = narrow(ex.eval_input_grad(&wide(&dy), &wide(&w)));
        assert_eq!(
            dx,
            reference::input_grad(&pb, &dy, &w).unwrap(),
            "input grad {pb:?}"
        );
    }
}

#[test]
fn stride_and_padding_change_the_sums_as_the_formulas_predict() {
    // 5×5 input, 3×3 kernel, stride 2, padding 1: output 3×3; the corner output sees only the
    // 2×2 corner of the input through the kernel's lower-right 2×2, and V25 is met only by G9·W5.
    let pb = ConvProblem::new(
        &[1, 1, 5, 5],
        &[1, 1, 3, 3],
        ConvParams::default().stride(2, 2).padding(1, 1),
    )
    .unwrap();
    let ex = Explanation::new(&pb, false).unwrap();
    assert_eq!(
        ex.forward_lines(Format::Text)[0],
        "G1 = V1·W5 + V2·W6 + V6·W8 + V7·W9"
    );
    assert_eq!(ex.input_grad_lines(Format::Text)[24], "∂E/∂V25 = ∂E/∂G9·W5");
    assert_eq!(
        ex.weight_grad_lines(Format::Text)[0],
        "∂E/∂W1 = ∂E/∂G5·V7 + ∂E/∂G6·V9 + ∂E/∂G8·V17 + ∂E/∂G9·V19"
    );
}

#[test]
fn multi_plane_names_carry_indices_and_big_problems_are_refused() {
    let pb = ConvProblem::new(&[2, 1, 3, 3], &[1, 1, 2, 2], ConvParams::default()).unwrap();
    let ex = Explanation::new(&pb, false).unwrap();
    assert_eq!(
        ex.forward_lines(Format::Text)[4],
        "G[2,1,1,1] = V[2,1,1,1]·W1 + V[2,1,1,2]·W2 + V[2,1,2,1]·W3 + V[2,1,2,2]·W4"
    );
    let big = ConvProblem::new(&[1, 8, 32, 32], &[8, 8, 3, 3], ConvParams::default()).unwrap();
    let e = Explanation::new(&big, false).unwrap_err();
    assert!(e.to_string().contains("limited to 4096"), "{e}");
}

#[test]
fn svg_is_well_formed_with_one_panel_per_weight() {
    for (xs, ws, params) in [
        (vec![1, 1, 3, 3], vec![1, 1, 2, 2], ConvParams::default()),
        (
            vec![1, 1, 8, 8],
            vec![1, 1, 3, 3],
            ConvParams::default().stride(2, 2).padding(1, 1),
        ),
        (
            vec![1, 2, 5, 5],
            vec![2, 1, 3, 3],
            ConvParams::default().groups(2),
        ),
    ] {
        let pb = ConvProblem::new(&xs, &ws, params).unwrap();
        let svg = Explanation::new(&pb, false).unwrap().svg();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}"));
        let panels = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("weight-panel"))
            .collect::<Vec<_>>();
        assert_eq!(panels.len(), pb.w_len());
        // Each panel highlights exactly the input pixels that weight met in image 1.
        for (i, panel) in panels.iter().enumerate() {
            let lit = panel
                .descendants()
                .filter(|n| n.is_element() && n.text().is_some_and(|t| t.starts_with('→')))
                .count();
            let met = Explanation::new(&pb, false).unwrap().weight_grads[i]
                .terms
                .iter()
                .filter(|(g, _)| g.index < pb.k * pb.p * pb.q)
                .count();
            assert_eq!(lit, met, "panel {i}");
        }
    }
}

/// The (data-g, data-w or data-v) pairs of the cells of `class` under `node`.
fn cells(node: roxmltree::Node, class: &str, second: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = node
        .descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .map(|n| {
            (
                n.attribute("data-g").unwrap_or_default().to_string(),
                n.attribute(second).unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// For random small problems with stride, padding, dilation and groups, every panel lights
/// exactly the terms of its sum: input panels and the full-convolution view the ∂E/∂V terms,
/// weight panels the ∂E/∂W terms and the padding they met.
#[test]
fn svg_panels_light_exactly_the_terms_of_their_sums() {
    let mut rng = gpuconv::rng::SplitMix64::new(0x5f6);
    let mut checked = 0;
    while checked < 40 {
        let groups = rng.pick(&[1, 1, 2]);
        let x = [
            rng.range(1, 3),
            groups * rng.range(1, 3),
            rng.range(2, 7),
            rng.range(2, 7),
        ];
        let w = [
            groups * rng.range(1, 3),
            x[1] / groups,
            rng.range(1, 4),
            rng.range(1, 4),
        ];
        let params = ConvParams {
            stride: [rng.range(1, 4), rng.range(1, 4)],
            padding: [
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
            ],
            dilation: [rng.range(1, 3), rng.range(1, 3)],
            groups,
        };
        let Ok(pb) = ConvProblem::new(&x, &w, params) else {
            continue;
        };
        let ex = Explanation::new(&pb, false).unwrap();
        let image = pb.c * pb.h * pb.w;
        let inputs: Vec<usize> = (0..image).collect();
        let svg = ex.svg_part(SvgPart::All, &inputs);
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
        let name = |prefix: char, text: &str| -> Vec<(String, String)> {
            // Parse "∂E/∂G3·W4 + ∂E/∂G1·W2" into sorted (G, W) name pairs.
            let rhs = text.split(" = ").nth(1).unwrap();
            let mut v: Vec<(String, String)> = if rhs == "0" {
                vec![]
            } else {
                rhs.split(" + ")
                    .map(|t| {
                        let t = t.trim_start_matches("∂E/∂");
                        let (g, other) = t.split_once('·').unwrap();
                        assert!(other.starts_with(prefix), "{text}");
                        (g.to_string(), other.to_string())
                    })
                    .collect()
            };
            v.sort();
            v
        };
        let input_lines = ex.input_grad_lines(Format::Text);
        let panels: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("input-panel"))
            .collect();
        assert_eq!(panels.len(), image);
        for (v, panel) in panels.iter().enumerate() {
            assert_eq!(
                cells(*panel, "hit", "data-w"),
                name('W', &input_lines[v]),
                "input panel {v} of {x:?} {w:?} {params:?}"
            );
        }
        let full = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("full-view"))
            .expect("a full-convolution view");
        let v = ex.full_view_input(&inputs).unwrap();
        assert_eq!(
            cells(full, "hit", "data-w"),
            name('W', &input_lines[v]),
            "full view of input {v} of {x:?} {w:?} {params:?}"
        );
        // Weight panels: the terms and padding met in image 1.
        let weight_lines = ex.weight_grad_lines(Format::Text);
        let plane = pb.k * pb.p * pb.q;
        for (i, panel) in doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("weight-panel"))
            .enumerate()
        {
            // The printed line's terms, restricted to outputs of image 1.
            let mut first_image: Vec<(String, String)> = ex.weight_grads[i]
                .terms
                .iter()
                .filter(|(g, _)| g.index < plane)
                .map(|&(g, v)| (ex.symbol_name(g), ex.symbol_name(v)))
                .collect();
            first_image.sort();
            if pb.n == 1 {
                assert_eq!(first_image, name('V', &weight_lines[i]));
            }
            assert_eq!(
                cells(panel, "hit", "data-v"),
                first_image,
                "weight panel {i}"
            );
            let mut pads: Vec<(String, String)> = ex.weight_grads[i]
                .padding
                .iter()
                .filter(|g| g.index < plane)
                .map(|g| (ex.symbol_name(*g), String::new()))
                .collect();
            pads.sort();
            assert_eq!(
                cells(panel, "pad-hit", "data-none"),
                pads,
                "weight panel {i} padding"
            );
        }
        checked += 1;
    }
}
