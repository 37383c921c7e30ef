//! The hub's side of the proxy's plugs: who may open a private Space, and
//! where usage reports go.

use std::sync::Arc;

use spaceport_proxy::{AccessChecker, AnalyticsSink, AppPass, BoxFuture, SpaceReport};

use super::tickets::{self, Kind, TicketKey};
use crate::state::Store;

/// The purpose the ticket key is derived for.
pub const TICKET_KEY_PURPOSE: &str = "app-tickets";

/// The node's ticket key, derived from its secret key.
pub fn ticket_key(store: &Store) -> TicketKey {
    TicketKey::new(&store.derived_key(TICKET_KEY_PURPOSE))
}

/// Who may open a private Space: a hub token whose user may read the
/// Space's owner (the user itself, a member of the organization, or an
/// admin), or an app ticket made for that Space and user (while the user
/// still may read it and the hub session it was made in lasts).
#[derive(Debug, Clone)]
pub struct StoreAccess {
    store: Arc<Store>,
    tickets: TicketKey,
}

impl StoreAccess {
    /// The checker over the hub's store and its ticket key.
    pub fn new(store: Arc<Store>) -> Self {
        let tickets = ticket_key(&store);
        Self { store, tickets }
    }

    /// Whether the user named in a ticket may still read `space`.
    fn user_may_read(&self, user: &str, space: &spaceport_proxy::SpaceId) -> bool {
        match self.store.user(user) {
            Ok(Some(user)) => self.store.can_read(&user, space.owner()).unwrap_or(false),
            _ => false,
        }
    }

    /// The ticket's contents when it is of `kind` and made for `space`.
    fn ticket_for(
        &self,
        value: &str,
        kind: Kind,
        space: &spaceport_proxy::SpaceId,
    ) -> Option<tickets::Ticket> {
        let t = self.tickets.verify(value, kind, now_secs())?;
        let live = self
            .store
            .session_alive(t.session, &t.user)
            .unwrap_or(false);
        (t.space == space.to_string() && live && self.user_may_read(&t.user, space)).then_some(t)
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl AccessChecker for StoreAccess {
    fn allows<'a>(
        &'a self,
        space: &'a spaceport_proxy::SpaceId,
        token: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if tickets::is_ticket(token) {
                return self.ticket_for(token, Kind::App, space).is_some();
            }
            match self.store.authenticate(token) {
                Ok(Some((user, _))) => self.store.can_read(&user, space.owner()).unwrap_or(false),
                _ => false,
            }
        })
    }

    fn exchange<'a>(
        &'a self,
        space: &'a spaceport_proxy::SpaceId,
        ticket: &'a str,
    ) -> BoxFuture<'a, Option<AppPass>> {
        Box::pin(async move {
            let t = self.ticket_for(ticket, Kind::Sign, space)?;
            let value = self.tickets.mint(
                Kind::App,
                &t.space,
                &t.user,
                t.session,
                now_secs() + tickets::APP_TTL_SECS,
            );
            Some(AppPass {
                value,
                max_age: std::time::Duration::from_secs(tickets::APP_TTL_SECS.unsigned_abs()),
            })
        })
    }

    fn is_hub_credential(&self, credential: &str) -> bool {
        is_hub_credential(credential)
    }
}

/// Whether a credential is, by its form, one a visitor holds for the hub:
/// a hub token, a session id, an app ticket, or a Hugging Face token. The
/// proxies remove such credentials before any app sees them (on one node
/// and on Kubernetes alike).
pub fn is_hub_credential(credential: &str) -> bool {
    credential.starts_with(crate::state::TOKEN_PREFIX)
        || credential.starts_with(crate::state::SESSION_PREFIX)
        || credential.starts_with("hf_")
        || tickets::is_ticket(credential)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TokenScope;

    fn space(id: &str) -> spaceport_proxy::SpaceId {
        id.parse().unwrap()
    }

    fn setup() -> (tempfile::TempDir, Arc<Store>, StoreAccess) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("data")).unwrap());
        store.create_user("alice", None, false).unwrap();
        store.create_user("mallory", None, false).unwrap();
        let access = StoreAccess::new(store.clone());
        (dir, store, access)
    }

    /// A hub session of `user` (a new token's), as the UI's sign-in makes.
    fn session(store: &Store, user: &str) -> i64 {
        let (token, _) = store.create_token(user, "t", TokenScope::Read).unwrap();
        let (_, info) = store.create_session(token.id).unwrap();
        info.id
    }

    fn sign(store: &Store, space: &str, user: &str, ttl: i64) -> String {
        let sid = if store.user(user).unwrap().is_some() {
            session(store, user)
        } else {
            1
        };
        ticket_key(store).mint(Kind::Sign, space, user, sid, now_secs() + ttl)
    }

    #[tokio::test]
    async fn a_sign_ticket_becomes_an_app_cookie_for_that_space_only() {
        let (_d, store, access) = setup();
        let diary = space("alice/diary");
        let t = sign(&store, "alice/diary", "alice", 60);
        let pass = access.exchange(&diary, &t).await.expect("a valid ticket");
        assert_eq!(pass.max_age.as_secs(), 12 * 3600);
        assert!(access.allows(&diary, &pass.value).await);
        assert!(
            !access.allows(&space("alice/other"), &pass.value).await,
            "the cookie opens its own Space only"
        );
        assert!(
            access.exchange(&space("alice/other"), &t).await.is_none(),
            "a ticket is for its own Space only"
        );
        assert!(
            !access.allows(&diary, &t).await,
            "a sign ticket is not a cookie"
        );
        assert!(
            access.exchange(&diary, &pass.value).await.is_none(),
            "a cookie is not a sign ticket"
        );
    }

    #[tokio::test]
    async fn tickets_for_users_who_may_not_read_or_expired_ones_are_refused() {
        let (_d, store, access) = setup();
        let diary = space("alice/diary");
        let t = sign(&store, "alice/diary", "mallory", 60);
        assert!(access.exchange(&diary, &t).await.is_none());
        let old = sign(&store, "alice/diary", "alice", -1);
        assert!(access.exchange(&diary, &old).await.is_none());
        let ghost = sign(&store, "alice/diary", "nobody", 60);
        assert!(access.exchange(&diary, &ghost).await.is_none());
        // Another node's key.
        let other = tempfile::tempdir().unwrap();
        let other = Store::open(&other.path().join("data")).unwrap();
        let foreign = sign(&other, "alice/diary", "alice", 60);
        assert!(access.exchange(&diary, &foreign).await.is_none());
    }

    #[tokio::test]
    async fn signing_out_of_the_hub_closes_the_apps_opened_from_that_session() {
        let (_d, store, access) = setup();
        let diary = space("alice/diary");
        let (token, _) = store.create_token("alice", "t", TokenScope::Read).unwrap();
        let (cookie, info) = store.create_session(token.id).unwrap();
        let key = ticket_key(&store);
        let t = key.mint(Kind::Sign, "alice/diary", "alice", info.id, now_secs() + 60);
        let pass = access.exchange(&diary, &t).await.unwrap();
        assert!(access.allows(&diary, &pass.value).await);
        assert!(store.end_session(&cookie).unwrap());
        assert!(!access.allows(&diary, &pass.value).await);
        assert!(access.exchange(&diary, &t).await.is_none());
        // Another user's session does not stand in for alice's.
        let mallorys = session(&store, "mallory");
        let t = key.mint(
            Kind::Sign,
            "alice/diary",
            "alice",
            mallorys,
            now_secs() + 60,
        );
        assert!(access.exchange(&diary, &t).await.is_none());
    }

    #[tokio::test]
    async fn hub_tokens_still_open_private_spaces_and_are_recognised() {
        let (_d, store, access) = setup();
        let (_, token) = store.create_token("alice", "t", TokenScope::Read).unwrap();
        assert!(access.allows(&space("alice/diary"), &token).await);
        assert!(!access.allows(&space("mallory/x"), "sp_made_up").await);
        assert!(access.is_hub_credential(&token));
        assert!(access.is_hub_credential("hf_someone"));
        assert!(access.is_hub_credential(&sign(&store, "a/b", "alice", 5)));
        assert!(access.is_hub_credential("sps_a_session_id"));
        assert!(!access.is_hub_credential("the-apps-own-key"));
    }
}
