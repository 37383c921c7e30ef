//! The hub's side of the proxy's plugs: who may open a private Space, and
//! where usage reports go.

use std::sync::Arc;

use spaceport_proxy::{AccessChecker, AnalyticsSink, BoxFuture, SpaceReport};

use crate::state::Store;

/// A token opens a private Space when its user may read the Space's owner
/// (the user itself, a member of the organization, or an admin).
#[derive(Debug, Clone)]
pub struct StoreAccess(pub Arc<Store>);

impl AccessChecker for StoreAccess {
    fn allows<'a>(
        &'a self,
        space: &'a spaceport_proxy::SpaceId,
        token: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match self.0.authenticate(token) {
                Ok(Some((user, _))) => self.0.can_read(&user, space.owner()).unwrap_or(false),
                _ => false,
            }
        })
    }
}

/// Usage reports go to the database, per Space and day.
#[derive(Debug, Clone)]
pub struct StoreSink(pub Arc<Store>);

impl AnalyticsSink for StoreSink {
    fn record(&self, reports: Vec<SpaceReport>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let store = self.0.clone();
            let result =
                tokio::task::spawn_blocking(move || store.record_analytics(&reports)).await;
            match result {
                Ok(Err(e)) => tracing::warn!(error = %e, "failed to store usage reports"),
                Err(e) => tracing::warn!(error = %e, "the usage report task failed"),
                Ok(Ok(())) => {}
            }
        })
    }
}
