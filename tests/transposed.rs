//! Transposed convolution against its definition (PyTorch's `conv_transpose2d`), written here
//! as direct loops independent of the convolution code: forward, input and weight gradients on
//! the reference, the fast CPU path and the GPU, over stride, asymmetric padding, output padding
//! (below the stride, and at or above it where the dilation allows), dilation and groups.

mod common;

use common::*;
use gpuconv::transposed::{self, Backend, TransposedProblem};
use gpuconv::{ConvParams, Error};

/// y, and the gradients of Σ y·g with respect to x and w, by the definition:
/// y[n, co, h·sh − top + r·dh, w·sw − left + s·dw] += x[n, ci, h, w]·W[ci, co % Cout_g, r, s].
fn direct(
    pb: &TransposedProblem,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, cin, h, wd] = pb.x_shape;
    let [_, cout_g, r, s] = pb.w_shape();
    let [_, cout, ho, wo] = pb.y_shape();
    let p = pb.conv.params;
    let groups = p.groups;
    let cin_g = cin / groups;
    let mut y: Vec<f64> = (0..n * cout * ho * wo)
        .map(|i| f64::from(b[i / (ho * wo) % cout]))
        .collect();
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    for nn in 0..n {
        for ci in 0..cin {
            let grp = ci / cin_g;
            for cg in 0..cout_g {
                let co = grp * cout_g + cg;
                for hh in 0..h {
                    for ww in 0..wd {
                        let xi = ((nn * cin + ci) * h + hh) * wd + ww;
                        for rr in 0..r {
                            for ss in 0..s {
                                let oh = (hh * p.stride[0] + rr * p.dilation[0]) as i64
                                    - p.padding[0] as i64;
                                let ow = (ww * p.stride[1] + ss * p.dilation[1]) as i64
                                    - p.padding[1] as i64;
                                if oh < 0 || ow < 0 || oh >= ho as i64 || ow >= wo as i64 {
                                    continue;
                                }
                                let yi = ((nn * cout + co) * ho + oh as usize) * wo + ow as usize;
                                let wi = ((ci * cout_g + cg) * r + rr) * s + ss;
                                y[yi] += f64::from(x[xi]) * f64::from(w[wi]);
                                dx[xi] += f64::from(g[yi]) * f64::from(w[wi]);
                                dw[wi] += f64::from(g[yi]) * f64::from(x[xi]);
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(y), f(dx), f(dw))
}

#[test]
fn transposed_ops_match_their_definition_on_every_path() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0x7a5);
    let mut checked = 0;
    let mut output_padding_past_stride = 0;
    while checked < 60 {
        let groups = rng.pick(&[1, 1, 2, 3]);
        let x_shape = [
            rng.range(1, 3),
            groups * rng.range(1, 4),
            rng.range(1, 9),
            rng.range(1, 9),
        ];
        let w_shape = [
            x_shape[1],
            rng.range(1, 4),
            rng.range(1, 5),
            rng.range(1, 5),
        ];
        let params = ConvParams {
            stride: [rng.range(1, 4), rng.range(1, 4)],
            padding: [
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
            ],
            dilation: [rng.range(1, 4), rng.range(1, 4)],
            groups,
        };
        let most = |i: usize| params.stride[i].max(params.dilation[i]);
        let output_padding = [rng.range(0, most(0)), rng.range(0, most(1))];
        let Ok(pb) = TransposedProblem::new(&x_shape, &w_shape, params, output_padding) else {
            continue;
        };
        if output_padding[0] >= params.stride[0] || output_padding[1] >= params.stride[1] {
            output_padding_past_stride += 1;
        }
        let x = rng.tensor(pb.x_len());
        let w = rng.tensor(w_shape.iter().product());
        let b = rng.tensor(pb.y_shape()[1]);
        let g = rng.tensor(pb.y_shape().iter().product());
        let (y, dx, dw) = direct(&pb, &x, &w, &b, &g);
        let what =
            format!("x={x_shape:?} w={w_shape:?} {params:?} output padding {output_padding:?}");
        for (name, backend) in [
            ("reference", Backend::Reference),
            ("fast", Backend::Fast),
            ("GPU", Backend::Gpu(ctx)),
        ] {
            assert_close(
                &format!("{name} forward {what}"),
                &transposed::forward(backend, &pb, &x, &w, Some(&b)).unwrap(),
                &y,
            );
            assert_close(
                &format!("{name} input-grad {what}"),
                &transposed::input_grad(backend, &pb, &g, &w).unwrap(),
                &dx,
            );
            assert_close(
                &format!("{name} weight-grad {what}"),
                &transposed::weight_grad(backend, &pb, &g, &x).unwrap(),
                &dw,
            );
        }
        checked += 1;
    }
    assert!(
        output_padding_past_stride >= 5,
        "{output_padding_past_stride}"
    );
}

#[test]
fn transposed_problems_are_validated_naming_the_values() {
    let p = ConvParams::default;
    // H_out = (H − 1)·sh − pads + dh·(R − 1) + op + 1.
    let pb = TransposedProblem::new(
        &[2, 4, 5, 6],
        &[4, 3, 3, 2],
        p().stride(2, 3).padding(1, 0),
        [1, 2],
    )
    .unwrap();
    assert_eq!(
        pb.y_shape(),
        [2, 3, 4 * 2 - 2 + 2 + 1 + 1, 5 * 3 + 1 + 2 + 1]
    );
    let e =
        TransposedProblem::new(&[1, 2, 4, 4], &[2, 1, 3, 3], p().stride(2, 2), [2, 0]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutputPadding {
                output_padding: 2,
                stride: 2,
                dilation: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("smaller than the stride (2)"), "{e}");
    let e = TransposedProblem::new(&[1, 3, 4, 4], &[2, 1, 3, 3], p(), [0, 0]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TransposedChannels {
                x_channels: 3,
                w_channels: 2
            }
        ),
        "{e}"
    );
    let e =
        TransposedProblem::new(&[1, 3, 4, 4], &[3, 1, 3, 3], p().groups(2), [0, 0]).unwrap_err();
    assert!(
        e.to_string().contains("groups=2 does not divide C_in=3"),
        "{e}"
    );
    let e = TransposedProblem::new(&[1, 1, 1, 1], &[1, 1, 1, 1], p().padding(1, 1), [0, 0])
        .unwrap_err();
    assert!(matches!(e, Error::TransposedEmpty { .. }), "{e}");
    let e = TransposedProblem::new(
        &[1, 1, 4, 4],
        &[1, 1, 3, 3],
        p().stride(usize::MAX, 1),
        [0, 0],
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { .. } | Error::ParamTooLarge { .. }),
        "{e}"
    );
}
