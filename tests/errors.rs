//! Every class of invalid input returns the right typed error with the offending values named.

mod common;

use common::{gpu, SplitMix64};
use gpuconv::cpu::reference;
use gpuconv::gpu::{ContextOptions, GpuContext};
use gpuconv::{ConvParams, ConvProblem, Error, TensorRole};

fn err(x: &[usize], w: &[usize], params: ConvParams) -> Error {
    ConvProblem::new(x, w, params).expect_err("problem should be invalid")
}

#[test]
fn invalid_problems_name_the_offending_values() {
    let p = ConvParams::default;
    let e = err(&[1, 0, 5, 5], &[2, 0, 3, 3], p());
    assert!(
        matches!(
            e,
            Error::ZeroSize {
                role: TensorRole::Input,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("[1, 0, 5, 5]"), "{e}");
    let e = err(&[1, 2, 5, 5], &[0, 2, 3, 3], p());
    assert!(
        matches!(
            e,
            Error::ZeroSize {
                role: TensorRole::Weight,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&[1, 2, 5], &[2, 2, 3, 3], p());
    assert!(
        matches!(
            e,
            Error::Rank {
                role: TensorRole::Input,
                expected: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&[1, 2, 5, 5], &[2, 2, 3, 3], p().stride(0, 1));
    assert!(matches!(e, Error::ZeroParam { what: "stride", .. }), "{e}");
    let e = err(&[1, 2, 5, 5], &[2, 2, 3, 3], p().dilation(1, 0));
    assert!(
        matches!(
            e,
            Error::ZeroParam {
                what: "dilation",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&[1, 2, 5, 5], &[2, 2, 3, 3], p().groups(0));
    assert!(matches!(e, Error::ZeroGroups), "{e}");
    let e = err(&[1, 64, 5, 5], &[6, 21, 3, 3], p().groups(3));
    assert_eq!(e.to_string(), "groups=3 does not divide C=64");
    let e = err(&[1, 6, 5, 5], &[4, 2, 3, 3], p().groups(3));
    assert_eq!(e.to_string(), "groups=3 does not divide K=4");
    let e = err(&[1, 6, 5, 5], &[6, 3, 3, 3], p().groups(3));
    assert!(
        matches!(
            e,
            Error::WeightChannels {
                got: 3,
                expected: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&[1, 1, 4, 4], &[1, 1, 6, 3], p().padding(0, 0));
    assert!(
        matches!(e, Error::EmptyOutput { axis: "height", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("padded input 4"), "{e}");
    let e = err(&[1, 1, 4, 4], &[1, 1, 3, 3], p().dilation(1, 3));
    assert!(
        matches!(
            e,
            Error::EmptyOutput {
                axis: "width",
                dilated: 7,
                ..
            }
        ),
        "{e}"
    );
    // Kernel larger than the input is fine once padding makes it fit.
    assert!(ConvProblem::new(&[1, 1, 4, 4], &[1, 1, 6, 3], p().padding(1, 0)).is_ok());
}

#[test]
fn mismatched_output_grad_and_bias_are_rejected() {
    let params = ConvParams::default().padding(1, 1);
    let e = ConvProblem::with_output_grad(&[2, 3, 8, 8], &[4, 3, 3, 3], &[2, 4, 8, 7], params)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                role: TensorRole::OutputGrad,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("[2, 4, 8, 8]"), "{e}");
    let pb = ConvProblem::new(&[2, 3, 8, 8], &[4, 3, 3, 3], params).unwrap();
    let e = pb.check_shape(TensorRole::Bias, &[5]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                role: TensorRole::Bias,
                ..
            }
        ),
        "{e}"
    );
    let (x, w) = (vec![1.0; pb.x_len()], vec![1.0; pb.w_len()]);
    let e = reference::forward(&pb, &x, &w, Some(&[1.0; 3])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                role: TensorRole::Bias,
                got: 3,
                expected: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = reference::forward(&pb, &x[1..], &w, None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                role: TensorRole::Input,
                ..
            }
        ),
        "{e}"
    );
    let e = reference::bias_grad(&[2, 4, 8], &[1.0; 64]).unwrap_err();
    assert!(matches!(e, Error::Rank { .. }), "{e}");
}

#[test]
fn gpu_ops_reject_invalid_input_without_panicking() {
    let ctx = gpu().expect("GPU context");
    let params = ConvParams::default();
    let x = ctx.upload(&[1.0; 2 * 3 * 5 * 5], &[2, 3, 5, 5]).unwrap();
    let w = ctx.upload(&[1.0; 4 * 3 * 3 * 3], &[4, 3, 3, 3]).unwrap();
    let bad_bias = ctx.upload(&[1.0; 3], &[3]).unwrap();
    let e = ctx.forward(&x, &w, Some(&bad_bias), params).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                role: TensorRole::Bias,
                ..
            }
        ),
        "{e}"
    );
    let e = ctx.forward(&x, &w, None, params.groups(2)).unwrap_err();
    assert!(matches!(e, Error::GroupsDoNotDivide { .. }), "{e}");
    let dy = ctx.upload(&[1.0; 2 * 4 * 3 * 2], &[2, 4, 3, 2]).unwrap();
    let e = ctx.input_grad(&dy, &w, &[2, 3, 5, 5], params).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                role: TensorRole::OutputGrad,
                ..
            }
        ),
        "{e}"
    );
    let e = ctx.weight_grad(&dy, &x, &[4, 3, 3, 3], params).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                role: TensorRole::OutputGrad,
                ..
            }
        ),
        "{e}"
    );
    let e = ctx.upload(&[1.0; 5], &[2, 3]).unwrap_err();
    assert!(matches!(e, Error::UploadLength { .. }), "{e}");
    let e = ctx
        .conv2d_forward(
            &[1.0; 10],
            &[2, 3, 5, 5],
            &[1.0; 108],
            &[4, 3, 3, 3],
            None,
            params,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                role: TensorRole::Input,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensors_beyond_the_device_limits_give_a_clear_error() {
    let ctx = gpu().expect("GPU context");
    // Tensors past one storage binding are tiled; past the largest buffer the device
    // can create, they are refused with the sizes named.
    let limit = ctx.limits().max_buffer_size;
    // A 1×1 input padded until the output alone exceeds the buffer limit.
    let side = ((limit / 4) as f64).sqrt() as usize + 1;
    let pad = side / 2 + 1;
    let params = ConvParams::default().padding(pad, pad);
    let x = ctx.upload(&[1.0], &[1, 1, 1, 1]).unwrap();
    let w = ctx.upload(&[1.0], &[1, 1, 1, 1]).unwrap();
    match ctx.forward(&x, &w, None, params) {
        Err(Error::BufferTooLarge {
            bytes, limit: l, ..
        }) => assert!(bytes > u128::from(l) && l == limit, "{bytes} vs {l}"),
        Err(Error::TooLarge { .. }) => {}
        other => panic!("expected a buffer-size error, got {other:?}"),
    }
}

#[test]
fn tensors_from_another_context_are_rejected() {
    let ctx = gpu().expect("GPU context");
    let other = GpuContext::with_options(ContextOptions::default()).unwrap();
    let mut rng = SplitMix64::new(3);
    let x = other.upload(&rng.tensor(25), &[1, 1, 5, 5]).unwrap();
    let w = ctx.upload(&rng.tensor(9), &[1, 1, 3, 3]).unwrap();
    let e = ctx
        .forward(&x, &w, None, ConvParams::default())
        .unwrap_err();
    assert!(matches!(e, Error::ForeignTensor), "{e}");
    assert!(matches!(ctx.read(&x).unwrap_err(), Error::ForeignTensor));
}
