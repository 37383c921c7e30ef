//! Prints this machine's GPUs as spaceport sees them through NVML, and the
//! GPUs the allocator would give a Space of a 1-GPU flavor. For checking
//! the NVML path on a machine with an NVIDIA driver:
//!
//! `cargo run -p spaceport-runtime --example gpu_check [FLAVOR]`
//!
//! FLAVOR defaults to `t4-small`; pass `any` to ask for one GPU of any model.

use spaceport_runtime::gpu::{GpuAllocator, GpuProbe, GpuRequest, NvmlProbe};
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::SpaceId;

fn main() -> anyhow::Result<()> {
    let flavor = std::env::args().nth(1).unwrap_or_else(|| "t4-small".into());
    let probe = NvmlProbe::new();
    if let Some(why) = &probe.unavailable {
        println!("NVML not available: {why}");
    }
    let gpus = probe.inventory();
    println!("{} GPU(s)", gpus.len());
    for g in &gpus {
        println!(
            "  index {}  {}  {}  memory {}/{} MiB  utilization {}%",
            g.index,
            g.uuid,
            g.name,
            g.memory_used_bytes >> 20,
            g.memory_total_bytes >> 20,
            g.utilization_percent
        );
    }
    let request = if flavor == "any" {
        GpuRequest {
            count: 1,
            model: None,
        }
    } else {
        let catalog = FlavorCatalog::builtin();
        let f = catalog.get(&flavor).ok_or_else(|| {
            anyhow::anyhow!(
                "no flavor {flavor}; offered: {}",
                catalog.names().join(", ")
            )
        })?;
        GpuRequest {
            count: f.gpus,
            model: f.gpu_model.clone(),
        }
    };
    println!(
        "request for flavor {flavor}: {} GPU(s), model {}",
        request.count,
        request.model.as_deref().unwrap_or("any")
    );
    let mut allocator = GpuAllocator::new(gpus);
    let space = SpaceId::parse("check/gpu").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    match allocator.allocate(&space, &request) {
        Ok(chosen) => {
            for g in chosen {
                println!("allocated: index {} {} ({})", g.index, g.uuid, g.name);
            }
            println!(
                "docker device request: driver nvidia, device_ids {:?}",
                allocator
                    .held_by(&space)
                    .iter()
                    .map(|g| g.uuid.clone())
                    .collect::<Vec<_>>()
            );
        }
        Err(refusal) => println!("refused: {refusal}"),
    }
    Ok(())
}
