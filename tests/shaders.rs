//! Every WGSL kernel parses and validates with naga at every specialisation (no GPU needed), and
//! matches the one Rust-side description of its interface: the uniform struct's field names,
//! offsets and types (`gpu::uniform`), and each binding's index, name, access and element type
//! (`gpu::interface`). No kernel keeps state in `var<private>`. Every kernel at every such
//! specialisation translates to MSL (Metal), HLSL (DX12), GLSL (GL) and SPIR-V (Vulkan) with the
//! options wgpu uses on those backends.

use std::collections::BTreeSet;

use gpuconv::gpu::interface::{Access, Elem};
use gpuconv::gpu::kernels::{BlockSpec, EpilogueSpec, Kernel, Spec, TileSpec, WindowSpec};
use gpuconv::gpu::plan::{FusedForward, Planner, Step};
use gpuconv::gpu::uniform::{Scalar, ALL_LAYOUTS};
use gpuconv::gpu::{BlockPasses, TileProfile, DEFAULT_TILE};
use gpuconv::rng::SplitMix64;
use gpuconv::{ConvParams, ConvProblem, Op};

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

/// Representative specialisations of every kernel: hand-picked edge shapes.
fn representative_specs(kernel: Kernel) -> Vec<Spec> {
    let tile = |lane_tile, uniform_tile, lanes| TileSpec {
        lane_tile,
        uniform_tile,
        lanes,
    };
    let window = |rows, cols, kernel, stride, dilation| WindowSpec {
        rows,
        cols,
        kernel,
        stride,
        dilation,
        upsample: stride,
        lanes: 8,
    };
    let block = |bm, bn, bk, tm, tn| BlockSpec { bm, bn, bk, tm, tn };
    if kernel.takes_window() {
        [
            window(4, 4, [3, 3], [1, 1], [1, 1]),
            window(1, 1, [1, 1], [1, 1], [1, 1]),
            window(2, 1, [7, 5], [2, 3], [1, 2]),
        ]
        .map(Spec::from)
        .to_vec()
    } else if kernel.takes_block() {
        [
            block(128, 128, 8, 8, 8),
            block(64, 64, 8, 4, 4),
            block(128, 32, 8, 4, 4),
            block(32, 32, 16, 8, 4),
        ]
        .map(Spec::from)
        .to_vec()
    } else {
        [DEFAULT_TILE, tile(1, 1, 64), tile(2, 4, 8), tile(4, 8, 16)]
            .map(Spec::from)
            .to_vec()
    }
}

/// The epilogue specialisations of `kernel`: none, and for the kernels that take one every
/// activation with the residual read and the pre-activation written (and one without).
fn epilogue_specs(kernel: Kernel) -> Vec<EpilogueSpec> {
    let mut v = vec![EpilogueSpec::default()];
    if kernel.epilogue_parts().0 {
        for activation in gpuconv::Activation::CODES {
            for (residual, save_pre) in [(true, true), (false, false)] {
                v.push(EpilogueSpec {
                    fused: true,
                    activation,
                    residual,
                    save_pre,
                });
            }
        }
    }
    v
}

/// Every (kernel, spec, epilogue) the planner picks on a sweep of problems under both tile
/// profiles and with every pass on the block core, plus the representative specs at every
/// epilogue.
fn all_specs() -> BTreeSet<(Kernel, Spec, EpilogueSpec)> {
    let mut set = BTreeSet::new();
    for &kernel in Kernel::ALL {
        for spec in representative_specs(kernel) {
            for epi in epilogue_specs(kernel) {
                set.insert((kernel, spec, epi));
            }
        }
    }
    let all_block = TileProfile {
        block_passes: BlockPasses::ALL,
        ..TileProfile::GPU
    };
    let planners = [TileProfile::SIMD_CPU, TileProfile::GPU, all_block]
        .map(|profile| Planner::new(profile, wgpu::Limits::default()));
    let mut rng = SplitMix64::new(0x5a5a);
    let mut problems = vec![
        ConvProblem::new(
            &[4, 64, 56, 56],
            &[64, 64, 3, 3],
            ConvParams::default().padding(1, 1),
        )
        .unwrap(),
        ConvProblem::new(&[4, 256, 14, 14], &[256, 256, 1, 1], ConvParams::default()).unwrap(),
    ];
    while problems.len() < 150 {
        let c = rng.pick(&[1, 3, 8, 16]);
        let g = rng.pick(&[1, 1, c]);
        let x = [rng.range(1, 3), c, rng.range(1, 20), rng.range(1, 20)];
        let w = [
            c * rng.pick(&[1, 2]),
            c / g,
            rng.range(1, 6),
            rng.range(1, 6),
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
            groups: g,
        };
        if let Ok(pb) = ConvProblem::new(&x, &w, params) {
            problems.push(pb);
        }
    }
    for planner in &planners {
        for pb in &problems {
            for op in [Op::Forward, Op::InputGrad, Op::WeightGrad, Op::BiasGrad] {
                for bias in [false, true] {
                    let mut plans = vec![planner.plan(op, pb, bias).unwrap()];
                    if op == Op::Forward {
                        let fused = FusedForward {
                            epilogue: gpuconv::Epilogue::new(gpuconv::Activation::Gelu),
                            bias,
                            residual: true,
                            save_pre: bias,
                        };
                        plans.push(planner.plan_fused_forward(pb, &fused).unwrap());
                        plans.push(planner.plan_unfused_forward(pb, &fused).unwrap());
                    }
                    for plan in plans {
                        for step in &plan.steps {
                            if let Step::Dispatch(d) = step {
                                set.insert((d.kernel, d.spec, d.epilogue));
                            }
                        }
                    }
                }
            }
        }
    }
    set
}

#[test]
fn every_kernel_validates_at_every_specialisation() {
    let specs = all_specs();
    for &kernel in Kernel::ALL {
        assert!(
            specs.iter().any(|(k, _, _)| *k == kernel),
            "{} has no specialisation to check",
            kernel.file_name()
        );
    }
    for (kernel, spec, epi) in &specs {
        validate(
            &kernel.source(*spec, *epi),
            &format!("{} at {spec}, {epi:?}", kernel.file_name()),
        );
    }
}

fn scalar_of(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<Scalar> {
    match module.types[ty].inner {
        naga::TypeInner::Scalar(naga::Scalar { kind, width: 4 }) => match kind {
            naga::ScalarKind::Uint => Some(Scalar::U32),
            naga::ScalarKind::Sint => Some(Scalar::I32),
            naga::ScalarKind::Float => Some(Scalar::F32),
            _ => None,
        },
        _ => None,
    }
}

fn elem_of(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<Elem> {
    let naga::TypeInner::Array {
        base,
        size: naga::ArraySize::Dynamic,
        ..
    } = module.types[ty].inner
    else {
        return None;
    };
    let f32_scalar = naga::Scalar {
        kind: naga::ScalarKind::Float,
        width: 4,
    };
    match module.types[base].inner {
        naga::TypeInner::Scalar(s) if s == f32_scalar => Some(Elem::F32),
        naga::TypeInner::Vector {
            size: naga::VectorSize::Quad,
            scalar,
        } if scalar == f32_scalar => Some(Elem::Vec4F32),
        naga::TypeInner::Scalar(naga::Scalar::U32) => Some(Elem::U32),
        naga::TypeInner::Atomic(naga::Scalar::U32) => Some(Elem::AtomicU32),
        _ => None,
    }
}

/// Checks `source` (a specialisation of `kernel`) against the kernel's interface; returns the
/// problems found.
fn interface_mismatches(kernel: Kernel, source: &str, what: &str) -> Vec<String> {
    let module = validate(source, what);
    let iface = kernel.interface();
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (_, var) in module.global_variables.iter() {
        let name = var.name.clone().unwrap_or_default();
        if var.space == naga::AddressSpace::Private {
            problems.push(format!("{what}: var<private> {name}"));
        }
        let Some(binding) = &var.binding else {
            continue;
        };
        if binding.group != 0 {
            problems.push(format!("{what}: {name} is in group {}", binding.group));
        }
        seen.insert(binding.binding);
        if binding.binding == 0 {
            if var.space != naga::AddressSpace::Uniform || name != iface.uniform_name {
                problems.push(format!(
                    "{what}: binding 0 is {name} in {:?}, expected uniform {}",
                    var.space, iface.uniform_name
                ));
                continue;
            }
            let ty = &module.types[var.ty];
            if ty.name.as_deref() != Some(iface.uniform.wgsl_name) {
                problems.push(format!(
                    "{what}: uniform is struct {:?}, expected {}",
                    ty.name, iface.uniform.wgsl_name
                ));
            }
            let naga::TypeInner::Struct { members, .. } = &ty.inner else {
                problems.push(format!("{what}: uniform is not a struct"));
                continue;
            };
            if layouter[var.ty].size as usize != iface.uniform.size {
                problems.push(format!(
                    "{what}: WGSL struct size {} vs Rust {}",
                    layouter[var.ty].size, iface.uniform.size
                ));
            }
            if members.len() != iface.uniform.fields.len() {
                problems.push(format!(
                    "{what}: {} WGSL fields vs {} Rust fields",
                    members.len(),
                    iface.uniform.fields.len()
                ));
            }
            for (m, f) in members.iter().zip(iface.uniform.fields) {
                let got = (
                    m.name.as_deref().unwrap_or(""),
                    m.offset as usize,
                    scalar_of(&module, m.ty),
                );
                let want = (f.name, f.offset, Some(f.scalar));
                if got != want {
                    problems.push(format!("{what}: field {got:?} vs Rust {want:?}"));
                }
            }
            continue;
        }
        let Some(slot) = iface.storage.iter().find(|b| b.index == binding.binding) else {
            problems.push(format!(
                "{what}: binding {} ({name}) is not described",
                binding.binding
            ));
            continue;
        };
        let access = match var.space {
            naga::AddressSpace::Storage { access }
                if access.contains(naga::StorageAccess::STORE) =>
            {
                Some(Access::ReadWrite)
            }
            naga::AddressSpace::Storage { .. } => Some(Access::Read),
            _ => None,
        };
        let got = (name.as_str(), access, elem_of(&module, var.ty));
        let want = (slot.name, Some(slot.access), Some(slot.elem));
        if got != want {
            problems.push(format!(
                "{what}: binding {} is {got:?}, described as {want:?}",
                binding.binding
            ));
        }
    }
    for b in iface.storage {
        if !seen.contains(&b.index) {
            problems.push(format!(
                "{what}: described binding {} ({}) is missing",
                b.index, b.name
            ));
        }
    }
    problems
}

#[test]
fn every_kernel_matches_its_interface_description() {
    let mut problems = Vec::new();
    for (kernel, spec, epi) in all_specs() {
        let what = format!("{} at {spec}, {epi:?}", kernel.file_name());
        problems.extend(interface_mismatches(
            kernel,
            &kernel.source(spec, epi),
            &what,
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every layout is used by some kernel.
    for layout in ALL_LAYOUTS {
        assert!(
            Kernel::ALL
                .iter()
                .any(|k| k.interface().uniform.wgsl_name == layout.wgsl_name),
            "{} is used by no kernel",
            layout.wgsl_name
        );
    }
}

/// The check itself catches a reordered field, a changed access, a renamed binding and a
/// `var<private>`: mutated copies of a kernel's source fail it, the original passes.
#[test]
fn the_interface_check_catches_mismatches() {
    let kernel = Kernel::Forward;
    let source = kernel.source(Spec::from(DEFAULT_TILE), EpilogueSpec::default());
    assert_eq!(
        interface_mismatches(kernel, &source, "original"),
        Vec::<String>::new()
    );
    let mutations = [
        ("n: u32, c: u32,", "c: u32, n: u32,"),
        ("var<storage, read> x", "var<storage, read_write> x"),
        ("var<storage, read> wt", "var<storage, read> weights"),
        (
            "alias Acc = f32;",
            "alias Acc = f32;\nvar<private> leak: u32;",
        ),
    ];
    for (from, to) in mutations {
        let mutated = source.replacen(from, to, 1);
        assert_ne!(mutated, source, "{from}");
        let mutated = mutated.replace(
            "wt[",
            if to.contains("weights") {
                "weights["
            } else {
                "wt["
            },
        );
        assert!(
            !interface_mismatches(kernel, &mutated, to).is_empty(),
            "mutation {from:?} -> {to:?} went unnoticed"
        );
    }
}

/// The backend translation of one specialised kernel, the way wgpu does it: override constants
/// resolved first, then each backend writer; returns the failures.
fn translation_failures(kernel: Kernel, spec: Spec, epi: EpilogueSpec) -> Vec<String> {
    use naga::back::{glsl, hlsl, msl, spv};
    let what = format!("{} at {spec}, {epi:?}", kernel.file_name());
    let source = kernel.source(spec, epi);
    let module = validate(&source, &what);
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what} needs a capability WebGPU does not give: {e}"));
    let mut constants = naga::back::PipelineConstants::default();
    for (name, value) in kernel.constants(spec) {
        constants.insert(name.to_string(), value);
    }
    let entry = (naga::ShaderStage::Compute, "main");
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, Some(entry), &constants)
            .unwrap_or_else(|e| panic!("{what}: overrides: {e}"));
    let mut failures = Vec::new();
    let mut fail = |backend: &str, e: String| failures.push(format!("{what} → {backend}: {e}"));
    let policies = naga::proc::BoundsCheckPolicies::default();
    // Metal: MSL 2.4, as wgpu-hal's Metal backend asks on current macOS.
    let msl_options = msl::Options {
        lang_version: (2, 4),
        bounds_check_policies: policies,
        ..Default::default()
    };
    let msl_pipeline = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, "main".to_string())),
        ..Default::default()
    };
    if let Err(e) = msl::write_string(&module, &info, &msl_options, &msl_pipeline) {
        fail("MSL", e.to_string());
    }
    // DX12: shader model 6.0 through DXC and 5.1 through FXC.
    for shader_model in [hlsl::ShaderModel::V6_0, hlsl::ShaderModel::V5_1] {
        let options = hlsl::Options {
            shader_model,
            restrict_indexing: true,
            ..Default::default()
        };
        let pipeline = hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, "main".to_string())),
        };
        let mut out = String::new();
        let mut writer = hlsl::Writer::new(&mut out, &options, &pipeline);
        if let Err(e) = writer.write(&module, &info, None) {
            fail(&format!("HLSL {shader_model:?}"), e.to_string());
        }
    }
    // GL: GLSL ES 3.10 (the compute minimum wgpu's GL backend needs) and desktop 4.30.
    for version in [
        glsl::Version::Embedded {
            version: 310,
            is_webgl: false,
        },
        glsl::Version::Desktop(430),
    ] {
        let options = glsl::Options {
            version,
            ..Default::default()
        };
        let pipeline = glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".to_string(),
            multiview: None,
        };
        let mut out = String::new();
        match glsl::Writer::new(&mut out, &module, &info, &options, &pipeline, policies) {
            Ok(mut writer) => {
                if let Err(e) = writer.write() {
                    fail(&format!("GLSL {version:?}"), e.to_string());
                }
            }
            Err(e) => fail(&format!("GLSL {version:?}"), e.to_string()),
        }
    }
    // Vulkan: SPIR-V 1.0.
    let spv_options = spv::Options {
        bounds_check_policies: policies,
        ..Default::default()
    };
    let spv_pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: "main".to_string(),
    };
    if let Err(e) = spv::write_vec(&module, &info, &spv_options, Some(&spv_pipeline)) {
        fail("SPIR-V", e.to_string());
    }
    failures
}

/// Every kernel, at every specialisation the planner picks (and the representative ones),
/// translates for Metal, DX12, GL and Vulkan.
#[test]
fn every_kernel_translates_for_every_backend() {
    let specs = all_specs();
    let mut failures = Vec::new();
    for &(kernel, spec, epi) in &specs {
        failures.extend(translation_failures(kernel, spec, epi));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kernel of the registry was translated.
    for &kernel in Kernel::ALL {
        assert!(
            specs.iter().any(|(k, _, _)| *k == kernel),
            "{kernel:?} untranslated"
        );
    }
}
