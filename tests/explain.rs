//! `explain`: golden lines for the classic example, sums that reproduce the reference exactly,
//! and a well-formed SVG with one panel per weight.

mod common;

use common::SplitMix64;
use gpuconv::cpu::reference;
use gpuconv::explain::{Explanation, Format};
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
