//! Every WGSL kernel parses and validates with naga (no GPU needed), and the Rust mirror of the
//! shared uniform has the size naga lays the WGSL struct out with.

use gpuconv::gpu::kernels::{BlockSpec, Kernel, Spec, TileSpec, WindowSpec};
use gpuconv::gpu::uniform::{ConvUniform, DepthwiseUniform};
use gpuconv::gpu::DEFAULT_TILE;

fn validate(source: &str, what: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what} does not validate:\n{}", e.emit_to_string(source)));
    module
}

#[test]
fn every_kernel_validates_at_every_tile_shape() {
    let specs = [
        DEFAULT_TILE,
        TileSpec {
            lane_tile: 1,
            uniform_tile: 1,
            lanes: 64,
        },
        TileSpec {
            lane_tile: 2,
            uniform_tile: 4,
            lanes: 8,
        },
        TileSpec {
            lane_tile: 4,
            uniform_tile: 8,
            lanes: 16,
        },
    ];
    let window = |rows, cols, kernel, stride, dilation| WindowSpec {
        rows,
        cols,
        kernel,
        stride,
        dilation,
        lanes: 8,
    };
    let windows = [
        window(4, 4, [3, 3], [1, 1], [1, 1]),
        window(1, 1, [1, 1], [1, 1], [1, 1]),
        window(2, 1, [7, 5], [2, 3], [1, 2]),
    ];
    let block = |bm, bn, bk, tm, tn| BlockSpec { bm, bn, bk, tm, tn };
    let blocks = [
        block(128, 128, 8, 8, 8),
        block(64, 64, 8, 4, 4),
        block(128, 32, 8, 4, 4),
        block(32, 32, 16, 8, 4),
    ];
    for kernel in Kernel::ALL {
        let specs: Vec<Spec> = if kernel.takes_window() {
            windows.iter().map(|&w| w.into()).collect()
        } else if kernel.takes_block() {
            assert!(blocks.iter().all(|b| b.is_valid()));
            blocks.iter().map(|&b| b.into()).collect()
        } else {
            specs.iter().map(|&t| t.into()).collect()
        };
        for spec in specs {
            validate(
                &kernel.source(spec),
                &format!("{} at {spec}", kernel.file_name()),
            );
        }
    }
}

/// Size of WGSL struct `name` (every member one 4-byte scalar) as naga lays it out.
fn wgsl_struct_size(module: &naga::Module, name: &str) -> (usize, usize) {
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let (handle, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("struct {name} in shaders/shared/conv.wgsl"));
    let naga::TypeInner::Struct { members, .. } = &ty.inner else {
        panic!("{name} is not a struct")
    };
    (layouter[handle].size as usize, members.len() * 4)
}

#[test]
fn uniforms_match_the_wgsl_structs() {
    let module = validate(&Kernel::Forward.source(DEFAULT_TILE.into()), "forward.wgsl");
    let cases = [
        ("Conv", std::mem::size_of::<ConvUniform>()),
        ("Depthwise", std::mem::size_of::<DepthwiseUniform>()),
    ];
    for (name, rust_size) in cases {
        let (size, packed) = wgsl_struct_size(&module, name);
        assert_eq!(size, rust_size, "{name}: WGSL size vs Rust size");
        assert_eq!(
            packed, rust_size,
            "{name}: every member is one 4-byte scalar"
        );
    }
}
