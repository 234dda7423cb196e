//! What a kernel binds: the description types. Each kernel's own description is its entry in the
//! registry in `gpu::kernels`; the host builds its bind group layouts from it, the planner names
//! its buffers by it, and the reflection test (`tests/shaders.rs`) checks every WGSL file
//! against it (binding index, variable name, address space and access, element type).

use crate::gpu::kernels::Kernel;
use crate::gpu::uniform::UniformLayout;

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
    /// `array<u32>`.
    U32,
    /// `array<atomic<u32>>`.
    AtomicU32,
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

impl Kernel {
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
                        Elem::Vec4F32 => 16,
                        Elem::F32 | Elem::U32 | Elem::AtomicU32 => 4,
                    }),
                },
                count: None,
            }))
            .collect()
    }
}
