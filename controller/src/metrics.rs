//! The controller's Prometheus metrics: reconciles (count, duration, errors
//! by kind), builds by result, leadership, and Spaces by stage (counted from
//! the watch cache when scraped).

use crate::crd::Space;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::BTreeMap;

/// The metric handles.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result (ok, error, invalid).
    pub reconciles: IntCounterVec,
    /// Reconcile durations by result.
    pub duration: HistogramVec,
    /// Reconcile errors by kind (kube, finalizer, no_namespace).
    pub errors: IntCounterVec,
    /// Builds by result (started, succeeded, failed, config_error).
    pub builds: IntCounterVec,
    /// 1 while this replica leads.
    pub leader: IntGauge,
    spaces: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "spaceport_controller_reconciles_total",
                "Reconciles of Spaces, by result",
            ),
            &["result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "spaceport_controller_reconcile_duration_seconds",
                "Time one reconcile of a Space took",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "spaceport_controller_reconcile_errors_total",
                "Failed reconciles, by kind of error",
            ),
            &["kind"],
        )?;
        let builds = IntCounterVec::new(
            Opts::new("spaceport_controller_builds_total", "Builds, by result"),
            &["result"],
        )?;
        let leader = IntGauge::new(
            "spaceport_controller_leader",
            "1 while this replica holds the leader lease",
        )?;
        let spaces = IntGaugeVec::new(
            Opts::new("spaceport_controller_spaces", "Spaces, by stage"),
            &["stage"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(builds.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(spaces.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            duration,
            errors,
            builds,
            leader,
            spaces,
        })
    }

    /// The text exposition, with the Spaces-by-stage gauge counted now.
    pub fn render<'a>(&self, spaces: impl IntoIterator<Item = &'a Space>) -> String {
        let mut by_stage: BTreeMap<String, i64> = BTreeMap::new();
        for s in spaces {
            let stage = s
                .status
                .as_ref()
                .and_then(|st| st.stage)
                .map_or_else(|| "UNKNOWN".to_owned(), |st| st.as_str().to_owned());
            *by_stage.entry(stage).or_default() += 1;
        }
        self.spaces.reset();
        for (stage, n) in by_stage {
            self.spaces.with_label_values(&[stage.as_str()]).set(n);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_counted_by_stage_when_scraped() {
        let m = Metrics::new().unwrap();
        let yaml = "apiVersion: spaceport.dev/v1alpha1\nkind: Space\nmetadata: {name: a}\nspec: {source: {image: x}}\nstatus: {stage: RUNNING}\n";
        let a: Space = serde_norway::from_str(yaml).unwrap();
        let b = a.clone();
        let mut c = a.clone();
        c.status = None;
        m.reconciles.with_label_values(&["ok"]).inc();
        let text = m.render([&a, &b, &c]);
        assert!(
            text.contains("spaceport_controller_spaces{stage=\"RUNNING\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("spaceport_controller_spaces{stage=\"UNKNOWN\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("spaceport_controller_reconciles_total{result=\"ok\"} 1"),
            "{text}"
        );
        let text = m.render([&c]);
        assert!(
            !text.contains("stage=\"RUNNING\""),
            "stale stages go: {text}"
        );
    }
}
