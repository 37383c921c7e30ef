//! Who may open a private Space: the hub decides, the proxy remembers briefly.
//!
//! A token opens a private Space when the hub's `GET /api/whoami-v2` accepts
//! it and the user may read the Space's owner, by the hub's own rule: the
//! user is the owner, a member of the owner organization (any role), or a
//! site admin. On Kubernetes the owner of the Space `<namespace>/<name>` is
//! its namespace: a namespace per user or organization, named like them
//! (names compare without regard to ASCII case, since namespaces are
//! lowercase). Answers are cached per (token, owner), allowed for
//! [`ALLOW_TTL`] and refused for [`DENY_TTL`], under a SHA-256 digest of the
//! token so no token is kept in memory. Without a hub every token is refused.
//! This module only answers; the proxy turns a refusal into 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use spaceport_proxy::{AccessChecker, BoxFuture, SpaceId};

/// How long an allowed answer is reused.
pub const ALLOW_TTL: Duration = Duration::from_secs(60);
/// How long a refused answer is reused.
pub const DENY_TTL: Duration = Duration::from_secs(10);
/// How long the hub may take to answer.
pub const HUB_TIMEOUT: Duration = Duration::from_secs(5);
/// Cache entries kept at most (a flood of made-up tokens must not grow it).
pub const CACHE_LIMIT: usize = 10_000;
/// Largest whoami answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// A hub URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HubUrlError {
    #[error(
        "invalid --hub-url {0:?}: expected http:// or https:// and a host, without user, query or fragment"
    )]
    Invalid(String),
    #[error("failed to load the trusted certificates for the hub: {0}")]
    Tls(String),
}

/// The hub's base URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    origin: String,
    base: String,
}

impl HubUrl {
    /// Parses `http(s)://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Self, HubUrlError> {
        let bad = || HubUrlError::Invalid(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let scheme = uri.scheme_str().ok_or_else(bad)?;
        let authority = uri.authority().ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https")
            || authority.as_str().contains('@')
            || authority.host().is_empty()
            || uri.query().is_some()
            || url.contains('#')
        {
            return Err(bad());
        }
        let origin = format!("{scheme}://{authority}");
        let base = format!("{origin}{}", uri.path().trim_end_matches('/'));
        Ok(Self { origin, base })
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn whoami(&self) -> String {
        format!("{}/api/whoami-v2", self.base)
    }
}

#[derive(Debug)]
struct Hub {
    url: HubUrl,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// What the hub says of a token (the fields used).
#[derive(Debug, Deserialize)]
struct WhoAmI {
    name: String,
    #[serde(default, rename = "isAdmin")]
    is_admin: bool,
    #[serde(default)]
    orgs: Vec<Org>,
}

#[derive(Debug, Deserialize)]
struct Org {
    name: String,
}

impl WhoAmI {
    fn may_read(&self, owner: &str) -> bool {
        self.is_admin
            || self.name.eq_ignore_ascii_case(owner)
            || self.orgs.iter().any(|o| o.name.eq_ignore_ascii_case(owner))
    }
}

type Key = ([u8; 32], String);

/// Checks tokens for private Spaces against the hub.
#[derive(Debug, Clone)]
pub struct HubAccess {
    hub: Option<Arc<Hub>>,
    cache: Arc<Mutex<HashMap<Key, (bool, Instant)>>>,
}

impl HubAccess {
    /// Asks `hub`; with none, refuses everyone.
    pub fn new(hub: Option<HubUrl>) -> Result<Self, HubUrlError> {
        let hub = match hub {
            None => None,
            Some(url) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(provider)
                    .map_err(|e| HubUrlError::Tls(e.to_string()))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client = Client::builder(TokioExecutor::new()).build(connector);
                Some(Arc::new(Hub { url, client }))
            }
        };
        Ok(Self {
            hub,
            cache: Arc::default(),
        })
    }

    fn cached(&self, key: &Key) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let &(allowed, at) = cache.get(key)?;
        let ttl = if allowed { ALLOW_TTL } else { DENY_TTL };
        (at.elapsed() < ttl).then_some(allowed)
    }

    fn remember(&self, key: Key, allowed: bool) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, (ok, at)| at.elapsed() < if *ok { ALLOW_TTL } else { DENY_TTL });
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(key, (allowed, Instant::now()));
    }

    async fn ask(
        hub: &Hub,
        token: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<WhoAmI>, String> {
        let auth = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        let mut req = Request::get(hub.url.whoami())
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::USER_AGENT, "spaceport-proxy");
        // The hub limits failed authentications per client; behind a proxy
        // that trusts it, the visitor is the client, not this proxy.
        if let Some(ip) = client {
            req = req.header("x-forwarded-for", ip.to_string());
        }
        let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(HUB_TIMEOUT, hub.client.request(req))
            .await
            .map_err(|_| "the hub did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Ok(None),
            other => return Err(format!("the hub answered {other}")),
        }
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
        let bytes = tokio::time::timeout(HUB_TIMEOUT, body.collect())
            .await
            .map_err(|_| "the hub did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("the hub's answer is not a whoami: {e}"))
    }

    async fn check(&self, space: &SpaceId, token: &str, client: Option<std::net::IpAddr>) -> bool {
        let Some(hub) = &self.hub else { return false };
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        let key = (hash, space.owner().to_ascii_lowercase());
        if let Some(allowed) = self.cached(&key) {
            return allowed;
        }
        let allowed = match Self::ask(hub, token, client).await {
            Ok(Some(who)) => who.may_read(space.owner()),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "failed to check a token with the hub");
                false
            }
        };
        self.remember(key, allowed);
        allowed
    }
}

impl AccessChecker for HubAccess {
    fn allows<'a>(&'a self, space: &'a SpaceId, token: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.check(space, token, None))
    }

    fn allows_from<'a>(
        &'a self,
        space: &'a SpaceId,
        token: &'a str,
        client: std::net::IpAddr,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.check(space, token, Some(client)))
    }

    fn is_hub_credential(&self, credential: &str) -> bool {
        spaceport_runtime::hub::plugs::is_hub_credential(credential)
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
