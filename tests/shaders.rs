//! Every WGSL kernel parses and validates with naga (no GPU needed), and the Rust mirror of the
//! shared uniform has the size naga lays the WGSL struct out with.

use gpuconv::gpu::kernels::{Kernel, TileSpec};
use gpuconv::gpu::uniform::ConvUniform;
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
            tm: 1,
            tn: 1,
            wg_x: 64,
            wg_y: 1,
        },
        TileSpec {
            tm: 8,
            tn: 8,
            wg_x: 8,
            wg_y: 8,
        },
        TileSpec {
            tm: 4,
            tn: 8,
            wg_x: 16,
            wg_y: 16,
        },
    ];
    for kernel in Kernel::ALL {
        for spec in specs {
            validate(
                &kernel.source(spec),
                &format!("{} at {spec}", kernel.file_name()),
            );
        }
    }
}

#[test]
fn conv_uniform_matches_the_wgsl_struct() {
    let module = validate(&Kernel::Forward.source(DEFAULT_TILE), "forward.wgsl");
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let (handle, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Conv"))
        .expect("struct Conv in shaders/shared/conv.wgsl");
    let naga::TypeInner::Struct { members, .. } = &ty.inner else {
        panic!("Conv is not a struct")
    };
    assert_eq!(
        layouter[handle].size as usize,
        std::mem::size_of::<ConvUniform>()
    );
    assert_eq!(
        members.len() * 4,
        std::mem::size_of::<ConvUniform>(),
        "every member is one u32"
    );
}
