mod common;
use common::*;
use gpuconv::{cpu::reference, ConvParams, ConvProblem};

#[test]
fn smoke() {
    let ctx = gpu().unwrap();
    let mut rng = SplitMix64::new(1);
    let params = ConvParams::default().stride(2, 1).padding_tlbr(1, 0, 2, 1).dilation(1, 2).groups(2);
    let pb = ConvProblem::new(&[2, 4, 9, 7], &[6, 2, 3, 2], params).unwrap();
    let x = rng.tensor(pb.x_len());
    let w = rng.tensor(pb.w_len());
    let b = rng.tensor(pb.k);
    let dy = rng.tensor(pb.y_len());
    let y = ctx.conv2d_forward(&x, &pb.x_shape(), &w, &pb.w_shape(), Some(&b), params).unwrap();
    assert_close("fwd", &y, &reference::forward(&pb, &x, &w, Some(&b)).unwrap());
    let dx = ctx.conv2d_input_grad(&dy, &pb.y_shape(), &w, &pb.w_shape(), &pb.x_shape(), params).unwrap();
    assert_close("dx", &dx, &reference::input_grad(&pb, &dy, &w).unwrap());
    let dw = ctx.conv2d_weight_grad(&dy, &pb.y_shape(), &x, &pb.x_shape(), &pb.w_shape(), params).unwrap();
    assert_close("dw", &dw, &reference::weight_grad(&pb, &dy, &x).unwrap());
    let db = ctx.conv2d_bias_grad(&dy, &pb.y_shape()).unwrap();
    assert_close("db", &db, &reference::bias_grad(&pb.y_shape(), &dy).unwrap());
}
