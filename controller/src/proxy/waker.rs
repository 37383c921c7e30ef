//! Waking a Space on Kubernetes: the proxy asks, the controller acts.
//!
//! A wake is a merge patch of the Space's `spaceport.dev/wake-requested-at`
//! annotation to the current time; the controller's reconcile sees a request
//! newer than `status.lastActivity` and scales the Deployment back up. The
//! waker returns once the patch is accepted, and the proxy then waits for an
//! endpoint to answer. It asks only for a Space that is asleep and has no
//! request pending already (several replicas may hold visits for the same
//! Space); one that is coming up anyway needs nothing; one that is paused or
//! broken fails with the reason, which the visitor reads on the 503 page.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use spaceport_proxy::{BoxFuture, SpaceId, WakeError, Waker};

use super::routes::Availability;
use super::{Clock, Directory, FIELD_MANAGER};
use crate::crd::Space;
use crate::lifecycle::WAKE_ANNOTATION;

/// Wakes Spaces through their wake annotation.
pub struct SpaceWaker {
    client: Client,
    directory: Directory,
    clock: Clock,
}

impl std::fmt::Debug for SpaceWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceWaker").finish_non_exhaustive()
    }
}

impl SpaceWaker {
    /// A waker that writes through `client` and decides from `directory`.
    pub fn new(client: Client, directory: Directory, clock: Clock) -> Self {
        Self {
            client,
            directory,
            clock,
        }
    }

    async fn ask(&self, space: &SpaceId) -> Result<(), WakeError> {
        let Some(view) = self.directory.get(space) else {
            return Err(WakeError("the Space no longer exists".into()));
        };
        match view.availability {
            Availability::Unavailable(why) => return Err(WakeError(why)),
            Availability::Serving | Availability::Starting => return Ok(()),
            Availability::Asleep if view.wake_pending() => return Ok(()),
            Availability::Asleep => {}
        }
        let now = (self.clock)().to_string();
        let patch = json!({"metadata": {"annotations": {WAKE_ANNOTATION: now}}});
        let (namespace, name) = view.resource;
        let api: Api<Space> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(%space, at = %now, "wake requested");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(%space, error = %e, "failed to request a wake");
                Err(WakeError(visitor_words(&e).into()))
            }
        }
    }
}

/// What a visitor is told when the request could not be made.
fn visitor_words(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 404 => "the Space no longer exists",
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            "the proxy is not allowed to wake Spaces; ask the operator to check its permissions"
        }
        kube::Error::Api(s) if s.code == 429 || s.code >= 500 => {
            "the cluster is busy; try again in a moment"
        }
        _ => "the cluster could not be reached; try again in a moment",
    }
}

impl Waker for SpaceWaker {
    fn wake<'a>(&'a self, space: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>> {
        Box::pin(self.ask(space))
    }
}
