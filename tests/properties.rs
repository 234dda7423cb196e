//! Property tests: the parsers and the problem constructor take arbitrary input, values near
//! `usize::MAX` included, and never panic or hang; every accepted problem's derived sizes agree
//! with each other.

use std::path::Path;

use gpuconv::{npy, ConvParams, ConvProblem};
use proptest::prelude::*;

/// Sizes biased to the edges: small, near powers of two, near `usize::MAX`.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..8,
        2 => 0usize..100_000,
        1 => (0u32..64).prop_map(|b| 1usize << b),
        1 => (0usize..4).prop_map(|d| usize::MAX - d),
        1 => (0usize..4).prop_map(|d| (1usize << 32) - d),
        1 => any::<usize>(),
    ]
}

fn params() -> impl Strategy<Value = ConvParams> {
    (
        [size(), size()],
        [size(), size(), size(), size()],
        [size(), size()],
        size(),
    )
        .prop_map(|(stride, padding, dilation, groups)| ConvParams {
            stride,
            padding,
            dilation,
            groups,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn conv_problem_never_panics_and_its_sizes_agree(
        x in [size(), size(), size(), size()],
        w in [size(), size(), size(), size()],
        params in params(),
    ) {
        if let Ok(pb) = ConvProblem::new(&x, &w, params) {
            // Every size is the product of its shape, none is zero, and the output size
            // follows the convolution arithmetic (checked in u128, which cannot wrap here).
            let prod = |s: [usize; 4]| s.iter().map(|&v| v as u128).product::<u128>();
            prop_assert_eq!(pb.x_len() as u128, prod(pb.x_shape()));
            prop_assert_eq!(pb.w_len() as u128, prod(pb.w_shape()));
            prop_assert_eq!(pb.y_len() as u128, prod(pb.y_shape()));
            prop_assert!(pb.x_len() > 0 && pb.w_len() > 0 && pb.y_len() > 0);
            let out = |len: usize, lo: usize, hi: usize, k: usize, d: usize, s: usize| {
                let span = (len as u128) + lo as u128 + hi as u128;
                let reach = (k as u128 - 1) * d as u128 + 1;
                (span - reach) / s as u128 + 1
            };
            let [top, left, bottom, right] = params.padding;
            prop_assert_eq!(pb.p as u128, out(x[2], top, bottom, w[2], params.dilation[0], params.stride[0]));
            prop_assert_eq!(pb.q as u128, out(x[3], left, right, w[3], params.dilation[1], params.stride[1]));
            prop_assert_eq!(pb.c % params.groups, 0);
            prop_assert_eq!(pb.k % params.groups, 0);
            prop_assert_eq!(pb.c / params.groups, w[1]);
        }
    }

    #[test]
    fn npy_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = npy::read_from(&bytes[..], Path::new("arbitrary.npy"));
    }

    #[test]
    fn npy_reader_never_panics_on_mangled_headers(
        shape in proptest::collection::vec(size(), 0..6),
        descr in prop_oneof!["<f4", "<f8", ">f4", "|u1", "<f4 ", ""],
        order in prop_oneof!["False", "True", "0", ""],
        extra in "[ -~]{0,40}",
        data in 0usize..64,
    ) {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape = format!("({}{})", dims.join(", "), if dims.len() == 1 { "," } else { "" });
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, {extra}}}"
        );
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data * 4));
        if let Ok(a) = npy::read_from(&bytes[..], Path::new("mangled.npy")) {
            prop_assert_eq!(a.data.len() as u128, a.shape.iter().map(|&d| d as u128).product::<u128>());
        }
    }

    #[cfg(feature = "cli")]
    #[test]
    fn shapes_file_reader_never_panics(text in "[\\[\\]{}\",:0-9a-z_ -]{0,200}") {
        let _ = gpuconv::suite::parse(&text, "arbitrary.json");
    }

    #[cfg(feature = "cli")]
    #[test]
    fn shapes_file_reader_never_panics_on_extreme_values(
        x in [size(), size(), size(), size()],
        w in [size(), size(), size(), size()],
        stride in [size(), size()],
        groups in size(),
    ) {
        let text = format!(
            r#"[{{"name": "p", "n": {}, "c": {}, "h": {}, "w": {}, "k": {}, "r": {}, "s": {}, "stride": [{}, {}], "padding": [{}, 0, 0, 0], "groups": {}}}]"#,
            x[0], x[1], x[2], x[3], w[0], w[2], w[3], stride[0], stride[1], w[1], groups
        );
        match gpuconv::suite::parse(&text, "extreme.json") {
            Ok(shapes) => {
                for s in shapes {
                    prop_assert!(s.problem().is_ok());
                }
            }
            // A refused shape is named, with the file.
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains("extreme.json") && e.contains("\"p\""), "{}", e);
            }
        }
    }
}
