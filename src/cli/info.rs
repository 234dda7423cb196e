//! `gpuconv info`: the adapters wgpu sees and the one gpuconv would pick.

use gpuconv::gpu::{enumerate_adapters, instance, pick_adapter, AdapterSummary};

use super::CliResult;

pub fn info() -> CliResult<()> {
    let instance = instance()?;
    let adapters = pollster::block_on(enumerate_adapters(&instance));
    println!("adapters wgpu sees ({}):", adapters.len());
    for a in &adapters {
        println!("  - {}", summary(a));
    }
    let picked = pollster::block_on(pick_adapter(&instance))?;
    println!("gpuconv picks: {}", summary(&picked));
    let l = picked.limits();
    println!("  max_buffer_size: {}", l.max_buffer_size);
    println!(
        "  max_storage_buffer_binding_size: {}",
        l.max_storage_buffer_binding_size
    );
    println!(
        "  max_compute_workgroups_per_dimension: {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "  max_compute_invocations_per_workgroup: {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroup_storage_size: {}",
        l.max_compute_workgroup_storage_size
    );
    println!(
        "  timestamp queries: {}",
        picked.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    );
    Ok(())
}

fn summary(adapter: &wgpu::Adapter) -> String {
    AdapterSummary::from_adapter(adapter).to_string()
}
