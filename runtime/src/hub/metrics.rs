//! The hub's own Prometheus metrics, next to the proxy's on `/metrics`:
//! Spaces by stage, repos by kind, builds in flight, and each GPU's use
//! with the Space holding it. Computed when scraped.

use std::sync::Arc;

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use super::Hub;
use crate::engine::ContainerEngine;
use crate::gpu::{GpuMetrics, GpuProbe};
use crate::repos::RepoKind;
use crate::stage::Stage;

/// The hub's gauges.
pub struct HubMetrics {
    registry: Registry,
    spaces: IntGaugeVec,
    repos: IntGaugeVec,
    gpus: GpuMetrics,
    probe: Option<Arc<dyn GpuProbe>>,
}

impl std::fmt::Debug for HubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubMetrics").finish_non_exhaustive()
    }
}

impl HubMetrics {
    /// The gauges; `probe` refreshes GPU utilization and memory on scrape.
    pub fn new(probe: Option<Arc<dyn GpuProbe>>) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let spaces = IntGaugeVec::new(
            Opts::new("spaceport_spaces", "Spaces on this hub by stage"),
            &["stage"],
        )?;
        let repos = IntGaugeVec::new(
            Opts::new("spaceport_repos", "Repos on this hub by kind"),
            &["kind"],
        )?;
        registry.register(Box::new(spaces.clone()))?;
        registry.register(Box::new(repos.clone()))?;
        let gpus = GpuMetrics::register(&registry)?;
        Ok(HubMetrics {
            registry,
            spaces,
            repos,
            gpus,
            probe,
        })
    }

    /// The Prometheus text exposition of the hub's state now.
    pub fn render<E: ContainerEngine>(&self, hub: &Hub<E>) -> String {
        for stage in Stage::ALL {
            self.spaces.with_label_values(&[stage.as_str()]).set(0);
        }
        for kind in RepoKind::ALL {
            let repos = hub.store().repos(kind).unwrap_or_default();
            self.repos
                .with_label_values(&[kind.as_str()])
                .set(repos.len() as i64);
            if kind == RepoKind::Space {
                for repo in &repos {
                    self.spaces
                        .with_label_values(&[hub.view(repo).stage.as_str()])
                        .inc();
                }
            }
        }
        {
            let allocator = hub.runner().gpus();
            let mut allocator = allocator.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(probe) = &self.probe {
                allocator.refresh(probe.inventory());
            }
            self.gpus.update(&allocator);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "failed to encode the hub's metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
