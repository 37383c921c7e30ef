//! Activity reports: visits keep a Space awake.
//!
//! Each batch the proxy reports, a Space that was used (a page view, or any
//! request: API clients of a Gradio app make no page views) gets its
//! `status.lastActivity` moved to now by a merge patch of the status
//! subresource; the controller puts a Space to sleep when that time is older
//! than its sleep time. Several replicas report the same Space, so a patch is
//! skipped when this replica wrote one less than [`MIN_INTERVAL`] ago, or the
//! watched status already holds a time that recent (or a later one: time
//! only moves forward). A Space that is asleep, paused or broken gets no
//! patch: its requests were answered by the proxy, not the app, and a newer
//! `lastActivity` would cancel a wake request. This module never decides to
//! sleep.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use spaceport_proxy::{AnalyticsSink, BoxFuture, SpaceId, SpaceReport};

use super::routes::Availability;
use super::{Clock, Directory, FIELD_MANAGER};
use crate::crd::Space;

/// The finest grain of `lastActivity` one replica writes.
pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(30);

/// Writes activity to the Spaces' status.
pub struct ActivitySink {
    client: Client,
    directory: Directory,
    clock: Clock,
    written: Mutex<HashMap<SpaceId, Timestamp>>,
}

impl std::fmt::Debug for ActivitySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitySink").finish_non_exhaustive()
    }
}

/// Whether a report shows the Space was used.
pub fn was_used(report: &SpaceReport) -> bool {
    report.visits > 0 || report.requests_by_class.iter().any(|&n| n > 0)
}

impl ActivitySink {
    /// A sink that writes through `client` and reads `directory`.
    pub fn new(client: Client, directory: Directory, clock: Clock) -> Self {
        Self {
            client,
            directory,
            clock,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `space` needs a patch at `now`.
    fn due(&self, space: &SpaceId, now: Timestamp) -> bool {
        let Some(view) = self.directory.get(space) else {
            return false;
        };
        if matches!(
            view.availability,
            Availability::Asleep | Availability::Unavailable(_)
        ) {
            return false;
        }
        let fresh = |t: Timestamp| t >= now || now.duration_since(t) < MIN_INTERVAL;
        if view.last_activity.is_some_and(fresh) {
            return false;
        }
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        !written.get(space).is_some_and(|&t| fresh(t))
    }

    async fn patch(&self, space: &SpaceId, now: Timestamp) -> Result<(), kube::Error> {
        // A Space gone from view since the batch began has nothing to move.
        let Some((namespace, name)) = self.directory.get(space).map(|v| v.resource) else {
            return Ok(());
        };
        let api: Api<Space> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = json!({"status": {"lastActivity": now.to_string()}});
        api.patch_status(&name, &params, &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn record_batch(&self, reports: Vec<SpaceReport>) {
        let now = (self.clock)();
        for report in reports.iter().filter(|r| was_used(r)) {
            let space = &report.space;
            if !self.due(space, now) {
                continue;
            }
            match self.patch(space, now).await {
                Ok(()) => {
                    self.written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(space.clone(), now);
                }
                Err(e) => tracing::warn!(%space, error = %e, "failed to record activity"),
            }
        }
        // Forget Spaces that are gone, so the map does not grow forever.
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|space, _| self.directory.get(space).is_some());
    }
}

impl AnalyticsSink for ActivitySink {
    fn record(&self, reports: Vec<SpaceReport>) -> BoxFuture<'_, ()> {
        Box::pin(self.record_batch(reports))
    }
}
