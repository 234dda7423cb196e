//! The `ndarray` feature: arrays of any layout upload in C order and read back into arrays and
//! strided views; a shape mismatch is a typed error.
#![cfg(feature = "ndarray")]

mod common;

use common::*;
use gpuconv::cpu::reference;
use gpuconv::{ConvParams, ConvProblem, Error};
use ndarray::{s, Array, Array4, ArrayD, IxDyn};

#[test]
fn arrays_of_any_layout_go_in_and_come_out() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0xa1);
    // X stored as (N, H, W, C) and viewed as NCHW: a non-contiguous view, copied on upload.
    let nhwc = Array::from_shape_vec((2, 5, 6, 3), rng.tensor(2 * 5 * 6 * 3)).unwrap();
    let x_view = nhwc.view().permuted_axes([0, 3, 1, 2]);
    assert!(x_view.as_slice().is_none());
    let w = Array4::from_shape_vec((4, 3, 3, 3), rng.tensor(4 * 27)).unwrap();
    let xt = ctx.upload_array(&x_view).unwrap();
    let wt = ctx.upload_array(&w).unwrap();
    assert_eq!(xt.shape(), &[2, 3, 5, 6]);
    let params = ConvParams::default().padding(1, 1);
    let y = ctx.forward(&xt, &wt, None, params).unwrap();
    let x_c: Vec<f32> = x_view.iter().copied().collect();
    let pb = ConvProblem::new(&[2, 3, 5, 6], &[4, 3, 3, 3], params).unwrap();
    let want = reference::forward(&pb, &x_c, w.as_slice().unwrap(), None).unwrap();
    let got: ArrayD<f32> = ctx.read_array(&y).unwrap();
    assert_eq!(got.shape(), &[2, 4, 5, 6]);
    assert_close("forward via arrays", got.as_slice().unwrap(), &want);

    // Read into every other column of a larger array: only that view is written.
    let mut big = Array4::<f32>::from_elem((2, 4, 5, 12), -7.0);
    let mut view = big.slice_mut(s![.., .., .., ..;2]);
    ctx.read_into_array(&y, &mut view).unwrap();
    let strided: Vec<f32> = big.slice(s![.., .., .., ..;2]).iter().copied().collect();
    assert_close("strided read", &strided, &want);
    assert!(big.slice(s![.., .., .., 1..;2]).iter().all(|&v| v == -7.0));

    let mut wrong = ArrayD::<f32>::zeros(IxDyn(&[2, 4, 5, 5]));
    let e = ctx.read_into_array(&y, &mut wrong).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}
