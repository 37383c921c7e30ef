//! GPUs of this machine: the inventory read through NVML (index, uuid,
//! model, memory, utilization), and the allocator that gives each Space
//! exactly the GPUs its flavor asks for, of the model the flavor selects,
//! never one GPU to two Spaces. A request that cannot be met is refused with
//! a reason and the Space waits in a queue anyone can read. NVML is loaded
//! at run time: on a machine without the NVIDIA driver the inventory is
//! empty, which is not an error.
//!
//! The allocator is plain data (no I/O, no clock); the probe is the only
//! part that touches the driver. Neither starts or stops containers.

mod metrics;

pub use metrics::GpuMetrics;

use crate::plan::SpaceId;
use std::collections::{BTreeMap, VecDeque};

/// One GPU as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: u32,
    /// `GPU-...`: what Docker's device request names.
    pub uuid: String,
    /// Device name, e.g. "NVIDIA A10G".
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// Percent of the last sample period the GPU was busy.
    pub utilization_percent: u32,
}

/// Reads the GPU inventory.
pub trait GpuProbe: Send + Sync {
    fn inventory(&self) -> Vec<GpuInfo>;
}

/// The NVML probe. Holds the library open when it loaded.
#[derive(Debug)]
pub struct NvmlProbe {
    nvml: Option<nvml_wrapper::Nvml>,
    /// Why NVML is not in use, when it is not.
    pub unavailable: Option<String>,
}

impl NvmlProbe {
    /// Loads NVML; without it the probe reports no GPUs.
    pub fn new() -> Self {
        match nvml_wrapper::Nvml::init() {
            Ok(nvml) => NvmlProbe {
                nvml: Some(nvml),
                unavailable: None,
            },
            Err(e) => {
                tracing::info!("no NVIDIA GPUs: NVML is not available ({e})");
                NvmlProbe {
                    nvml: None,
                    unavailable: Some(e.to_string()),
                }
            }
        }
    }
}

impl Default for NvmlProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl GpuProbe for NvmlProbe {
    fn inventory(&self) -> Vec<GpuInfo> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        let count = match nvml.device_count() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("failed to count GPUs through NVML: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for index in 0..count {
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("failed to open GPU {index} through NVML: {e}");
                    continue;
                }
            };
            let memory = device.memory_info().ok();
            out.push(GpuInfo {
                index,
                uuid: device.uuid().unwrap_or_else(|_| format!("index-{index}")),
                name: device.name().unwrap_or_default(),
                memory_total_bytes: memory.as_ref().map_or(0, |m| m.total),
                memory_used_bytes: memory.as_ref().map_or(0, |m| m.used),
                utilization_percent: device.utilization_rates().map_or(0, |u| u.gpu),
            });
        }
        out
    }
}

/// A fixed inventory, for tests and for machines described by hand.
#[derive(Debug, Clone, Default)]
pub struct StaticProbe(pub Vec<GpuInfo>);

impl GpuProbe for StaticProbe {
    fn inventory(&self) -> Vec<GpuInfo> {
        self.0.clone()
    }
}

/// What a Space asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    pub count: u32,
    /// Part of the device name a GPU must have; `None`: any model.
    pub model: Option<String>,
}

/// Why a request was not met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub reason: String,
}

/// A Space waiting for GPUs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub space: SpaceId,
    pub request: GpuRequest,
    pub reason: String,
}

/// Gives GPUs to Spaces, exclusively.
#[derive(Debug, Clone, Default)]
pub struct GpuAllocator {
    gpus: Vec<GpuInfo>,
    /// uuid -> holder.
    held: BTreeMap<String, SpaceId>,
    queue: VecDeque<Waiting>,
}

fn model_matches(name: &str, model: Option<&str>) -> bool {
    model.is_none_or(|m| name.to_lowercase().contains(&m.to_lowercase()))
}

impl GpuAllocator {
    pub fn new(gpus: Vec<GpuInfo>) -> Self {
        GpuAllocator {
            gpus,
            ..Default::default()
        }
    }

    pub fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    /// Refreshes memory and utilization figures, keeping allocations.
    pub fn refresh(&mut self, gpus: Vec<GpuInfo>) {
        self.gpus = gpus;
    }

    /// The GPUs a Space holds.
    pub fn held_by(&self, space: &SpaceId) -> Vec<GpuInfo> {
        self.gpus
            .iter()
            .filter(|g| self.held.get(&g.uuid) == Some(space))
            .cloned()
            .collect()
    }

    /// Who holds a GPU.
    pub fn holder(&self, uuid: &str) -> Option<&SpaceId> {
        self.held.get(uuid)
    }

    /// Spaces waiting for GPUs, first come first.
    pub fn queue(&self) -> Vec<Waiting> {
        self.queue.iter().cloned().collect()
    }

    /// Gives `space` the GPUs it asks for, or refuses with a reason and
    /// puts it in the queue. A Space that already holds GPUs gets the same
    /// ones again if they still fit the request.
    pub fn allocate(
        &mut self,
        space: &SpaceId,
        request: &GpuRequest,
    ) -> Result<Vec<GpuInfo>, Refusal> {
        let model = request.model.as_deref();
        let mine = self.held_by(space);
        if request.count == 0 {
            self.release(space);
            return Ok(Vec::new());
        }
        if mine.len() == request.count as usize
            && mine.iter().all(|g| model_matches(&g.name, model))
        {
            return Ok(mine);
        }
        self.release(space);
        let matching: Vec<&GpuInfo> = self
            .gpus
            .iter()
            .filter(|g| model_matches(&g.name, model))
            .collect();
        let free: Vec<GpuInfo> = matching
            .iter()
            .filter(|g| !self.held.contains_key(&g.uuid))
            .map(|g| (*g).clone())
            .collect();
        if free.len() >= request.count as usize {
            let chosen: Vec<GpuInfo> = free.into_iter().take(request.count as usize).collect();
            for g in &chosen {
                self.held.insert(g.uuid.clone(), space.clone());
            }
            self.queue.retain(|w| &w.space != space);
            return Ok(chosen);
        }
        let wanted = match model {
            Some(m) => format!("{} GPU(s) of model '{m}'", request.count),
            None => format!("{} GPU(s)", request.count),
        };
        let reason = if self.gpus.is_empty() {
            format!("needs {wanted}, but this machine has no GPU")
        } else if matching.len() < request.count as usize {
            let have: Vec<String> = self.gpus.iter().map(|g| g.name.clone()).collect();
            format!(
                "needs {wanted}, but this machine has only {} such (GPUs here: {})",
                matching.len(),
                have.join(", ")
            )
        } else {
            let mut holders: Vec<String> = matching
                .iter()
                .filter_map(|g| self.held.get(&g.uuid).map(|s| s.to_string()))
                .collect();
            holders.sort();
            holders.dedup();
            format!(
                "needs {wanted}, {} free; waiting for {} to release theirs",
                free.len(),
                holders.join(", ")
            )
        };
        let waiting = Waiting {
            space: space.clone(),
            request: request.clone(),
            reason: reason.clone(),
        };
        match self.queue.iter_mut().find(|w| &w.space == space) {
            Some(w) => *w = waiting,
            None => self.queue.push_back(waiting),
        }
        Err(Refusal { reason })
    }

    /// Frees a Space's GPUs (stop, sleep, delete) and drops it from the
    /// queue. Returns the freed uuids.
    pub fn release(&mut self, space: &SpaceId) -> Vec<String> {
        let freed: Vec<String> = self
            .held
            .iter()
            .filter(|(_, s)| *s == space)
            .map(|(u, _)| u.clone())
            .collect();
        for u in &freed {
            self.held.remove(u);
        }
        self.queue.retain(|w| &w.space != space);
        freed
    }

    /// Records GPUs a running container already has (re-adoption after a
    /// restart). Unknown uuids are ignored; a uuid held by another Space
    /// is refused.
    pub fn adopt(&mut self, space: &SpaceId, uuids: &[String]) -> Result<(), Refusal> {
        for u in uuids {
            if let Some(other) = self.held.get(u)
                && other != space
            {
                return Err(Refusal {
                    reason: format!("GPU {u} is already held by {other}"),
                });
            }
        }
        for u in uuids {
            if self.gpus.iter().any(|g| &g.uuid == u) {
                self.held.insert(u.clone(), space.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
