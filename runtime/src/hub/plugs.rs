//! The hub's side of the proxy's plugs: who may open a private Space, and
//! where usage reports go.

use std::sync::Arc;

use spaceport_proxy::{AccessChecker, AnalyticsSink, BoxFuture, SpaceReport};

use crate::state::Store;

/// A token, or the id of a browser session (the hub's cookie), opens a
/// private Space when its user may read the Space's owner (the user itself,
/// a member of the organization, or an admin).
#[derive(Debug, Clone)]
pub struct StoreAccess(pub Arc<Store>);

impl AccessChecker for StoreAccess {
    fn allows<'a>(
        &'a self,
        space: &'a spaceport_proxy::SpaceId,
        token: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let user = match self.0.authenticate(token) {
                Ok(Some((user, _))) => Some(user),
                Ok(None) => self
                    .0
                    .session_user(token)
                    .ok()
                    .flatten()
                    .map(|(user, _, _)| user),
                Err(_) => None,
            };
            user.is_some_and(|user| self.0.can_read(&user, space.owner()).unwrap_or(false))
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
