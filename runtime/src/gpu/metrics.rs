//! Prometheus gauges of GPU use: utilization and memory of each GPU,
//! labelled with the Space holding it ("" when free). Updated from an
//! inventory and the allocator; it reads nothing itself.

use super::GpuAllocator;
use prometheus::{GaugeVec, Opts, Registry};

#[derive(Debug, Clone)]
pub struct GpuMetrics {
    utilization: GaugeVec,
    memory_used: GaugeVec,
    memory_total: GaugeVec,
}

impl GpuMetrics {
    /// Registers the gauges in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let labels = &["gpu", "uuid", "model", "space"];
        let utilization = GaugeVec::new(
            Opts::new(
                "spaceport_gpu_utilization_ratio",
                "Share of the last sample period the GPU was busy (0 to 1)",
            ),
            labels,
        )?;
        let memory_used = GaugeVec::new(
            Opts::new("spaceport_gpu_memory_used_bytes", "GPU memory in use"),
            labels,
        )?;
        let memory_total = GaugeVec::new(
            Opts::new("spaceport_gpu_memory_total_bytes", "GPU memory installed"),
            labels,
        )?;
        registry.register(Box::new(utilization.clone()))?;
        registry.register(Box::new(memory_used.clone()))?;
        registry.register(Box::new(memory_total.clone()))?;
        Ok(GpuMetrics {
            utilization,
            memory_used,
            memory_total,
        })
    }

    /// Sets every gauge from the allocator's latest inventory.
    pub fn update(&self, allocator: &GpuAllocator) {
        self.utilization.reset();
        self.memory_used.reset();
        self.memory_total.reset();
        for g in allocator.gpus() {
            let space = allocator
                .holder(&g.uuid)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let index = g.index.to_string();
            let labels = [
                index.as_str(),
                g.uuid.as_str(),
                g.name.as_str(),
                space.as_str(),
            ];
            self.utilization
                .with_label_values(&labels)
                .set(f64::from(g.utilization_percent) / 100.0);
            self.memory_used
                .with_label_values(&labels)
                .set(g.memory_used_bytes as f64);
            self.memory_total
                .with_label_values(&labels)
                .set(g.memory_total_bytes as f64);
        }
    }
}
