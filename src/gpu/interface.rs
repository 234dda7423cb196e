//! What each kernel binds: the one description the host builds its bind group layouts from, the
//! planner names its buffers by, and the reflection test (`tests/interfaces.rs`) checks every
//! WGSL file against (binding index, variable name, address space and access, element type).

use crate::gpu::kernels::Kernel;
use crate::gpu::uniform::{
    BiasGradUniform, ConvUniform, DepthwiseUniform, PointwiseUniform, PointwiseWeightGradUniform,
    ReduceUniform, SgemmUniform, Uniform, UniformLayout,
};

/// How a storage buffer is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// The element type of a storage array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `array<f32>`.
    F32,
    /// `array<vec4<f32>>`: the binding's size must be a multiple of 16 bytes.
    Vec4F32,
}

/// One storage binding of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageBinding {
    /// `@binding(index)` in group 0.
    pub index: u32,
    /// The WGSL variable's name, also the name plans bind buffers by.
    pub name: &'static str,
    /// Read or read-write.
    pub access: Access,
    /// Element type.
    pub elem: Elem,
}

/// A kernel's whole interface: the uniform at binding 0, then its storage buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelInterface {
    /// The uniform variable's name in WGSL.
    pub uniform_name: &'static str,
    /// The uniform's layout.
    pub uniform: &'static UniformLayout,
    /// The storage bindings, in binding order (1, 2, …).
    pub storage: &'static [StorageBinding],
}

impl KernelInterface {
    /// The storage binding named `name`.
    pub fn binding(&self, name: &str) -> Option<&StorageBinding> {
        self.storage.iter().find(|b| b.name == name)
    }
}

const fn bind(index: u32, name: &'static str, access: Access, elem: Elem) -> StorageBinding {
    StorageBinding {
        index,
        name,
        access,
        elem,
    }
}

use Access::{Read, ReadWrite};
use Elem::{Vec4F32, F32};

/// src, weights, bias → dst: the forward-shaped kernels.
const FORWARD_LIKE: [StorageBinding; 4] = [
    bind(1, "x", Read, F32),
    bind(2, "wt", Read, F32),
    bind(3, "bias", Read, F32),
    bind(4, "y", ReadWrite, F32),
];
const INPUT_GRAD: [StorageBinding; 3] = [
    bind(1, "dy", Read, F32),
    bind(2, "wt", Read, F32),
    bind(3, "dx", ReadWrite, F32),
];
const WEIGHT_GRAD: [StorageBinding; 3] = [
    bind(1, "dy", Read, F32),
    bind(2, "x", Read, F32),
    bind(3, "partial", ReadWrite, F32),
];
const POINTWISE: [StorageBinding; 4] = [
    bind(1, "src", Read, Vec4F32),
    bind(2, "wt", Read, F32),
    bind(3, "bias", Read, F32),
    bind(4, "dst", ReadWrite, Vec4F32),
];
const POINTWISE_WEIGHT_GRAD: [StorageBinding; 3] = [
    bind(1, "dy", Read, Vec4F32),
    bind(2, "x", Read, Vec4F32),
    bind(3, "partial", ReadWrite, F32),
];
const DEPTHWISE: [StorageBinding; 4] = [
    bind(1, "src", Read, F32),
    bind(2, "wt", Read, F32),
    bind(3, "bias", Read, F32),
    bind(4, "dst", ReadWrite, F32),
];
const DEPTHWISE_WEIGHT_GRAD: [StorageBinding; 3] = [
    bind(1, "dy", Read, F32),
    bind(2, "x", Read, F32),
    bind(3, "partial", ReadWrite, F32),
];
const COL2IM: [StorageBinding; 2] = [bind(1, "col", Read, F32), bind(2, "dx", ReadWrite, F32)];
const REDUCE: [StorageBinding; 2] = [
    bind(1, "partial", Read, F32),
    bind(2, "out", ReadWrite, F32),
];
const BIAS_GRAD: [StorageBinding; 2] = [bind(1, "dy", Read, F32), bind(2, "db", ReadWrite, F32)];
const SGEMM: [StorageBinding; 3] = [
    bind(1, "a", Read, F32),
    bind(2, "b", Read, Vec4F32),
    bind(3, "c", ReadWrite, Vec4F32),
];

const fn interface<U: Uniform>(
    uniform_name: &'static str,
    storage: &'static [StorageBinding],
) -> KernelInterface {
    KernelInterface {
        uniform_name,
        uniform: &U::LAYOUT,
        storage,
    }
}

impl Kernel {
    /// This kernel's bindings.
    pub const fn interface(self) -> KernelInterface {
        match self {
            Kernel::Forward | Kernel::BlockForward => interface::<ConvUniform>("cv", &FORWARD_LIKE),
            Kernel::InputGrad | Kernel::BlockInputGrad => {
                interface::<ConvUniform>("cv", &INPUT_GRAD)
            }
            Kernel::WeightGrad | Kernel::BlockWeightGrad => {
                interface::<ConvUniform>("cv", &WEIGHT_GRAD)
            }
            Kernel::Col2im => interface::<ConvUniform>("cv", &COL2IM),
            Kernel::Pointwise => interface::<PointwiseUniform>("pw", &POINTWISE),
            Kernel::PointwiseWeightGrad => {
                interface::<PointwiseWeightGradUniform>("pg", &POINTWISE_WEIGHT_GRAD)
            }
            Kernel::Depthwise => interface::<DepthwiseUniform>("dw", &DEPTHWISE),
            Kernel::DepthwiseWeightGrad => {
                interface::<DepthwiseUniform>("dw", &DEPTHWISE_WEIGHT_GRAD)
            }
            Kernel::ReduceSplits => interface::<ReduceUniform>("rd", &REDUCE),
            Kernel::BiasGrad => interface::<BiasGradUniform>("bg", &BIAS_GRAD),
            Kernel::Sgemm => interface::<SgemmUniform>("sg", &SGEMM),
        }
    }

    /// The bind group layout entries of this kernel (uniform first), built from
    /// [`Kernel::interface`].
    pub fn layout_entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        let iface = self.interface();
        let uniform = wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: u64::try_from(iface.uniform.size)
                    .ok()
                    .and_then(wgpu::BufferSize::new),
            },
            count: None,
        };
        std::iter::once(uniform)
            .chain(iface.storage.iter().map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.index,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: b.access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: wgpu::BufferSize::new(match b.elem {
                        Elem::F32 => 4,
                        Elem::Vec4F32 => 16,
                    }),
                },
                count: None,
            }))
            .collect()
    }
}
