//! Access: who may open a private Space.
//!
//! Public and protected Spaces are open. A private Space answers 404, the same
//! page as a Space that does not exist, unless the request carries a token
//! (`Authorization: Bearer <token>`, or on the app's own host the app-access
//! cookie [`APP_COOKIE`] that the proxy set from a hub ticket) that the
//! [`AccessChecker`] accepts for that very Space. The hub's own sign-in cookie
//! is never read here: it belongs to the hub's origin and never reaches an
//! app. A token the proxy consumed is removed before the request reaches the
//! app, and so is any credential the checker recognises as the hub's, on
//! every Space, so a Space's code never sees its visitors' hub credentials.
//! This module decides; it does not route or render pages.

use std::collections::{HashMap, HashSet};

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::route::{BoxFuture, SpaceId, Visibility};

/// Name of the cookie the hub sets after sign-in: a session id, on the
/// hub's host only. The proxy never reads it; it strips it from any request
/// to an app and refuses it from apps.
pub const TOKEN_COOKIE: &str = "spaceport_session";

/// Name of the cookie, on a private app's own host, that opens it: set by
/// the proxy when it exchanges a hub ticket ([`AccessChecker::exchange`]).
pub const APP_COOKIE: &str = "spaceport_app";

/// What a valid ticket is exchanged for: the app cookie's value and lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPass {
    /// The cookie's value (checked again by [`AccessChecker::allows`] on
    /// every request).
    pub value: String,
    /// Its lifetime.
    pub max_age: std::time::Duration,
}

/// Checks tokens for private Spaces. The runtime implements it against its
/// user database; the controller against the hub's API. It is called on every
/// request to a private Space that carries a token, so implementations should
/// cache.
pub trait AccessChecker: Send + Sync + 'static {
    /// Whether `token` may open `space`.
    fn allows<'a>(&'a self, space: &'a SpaceId, token: &'a str) -> BoxFuture<'a, bool>;

    /// [`AccessChecker::allows`] for a request from `client`, the visitor's
    /// address as the proxy sees it. A checker that asks another service
    /// passes it on, so that service counts failed guesses per visitor and
    /// not per proxy (one visitor's guesses must not hold off everyone
    /// behind the same proxy). The default ignores it.
    fn allows_from<'a>(
        &'a self,
        space: &'a SpaceId,
        token: &'a str,
        client: std::net::IpAddr,
    ) -> BoxFuture<'a, bool> {
        let _ = client;
        self.allows(space, token)
    }

    /// Exchanges a ticket the hub put in a private app's URL (the `__sign`
    /// query parameter) for the app cookie's value. `None`: not a valid
    /// ticket for this Space (the default: no tickets).
    fn exchange<'a>(
        &'a self,
        space: &'a SpaceId,
        ticket: &'a str,
    ) -> BoxFuture<'a, Option<AppPass>> {
        let _ = (space, ticket);
        Box::pin(async { None })
    }

    /// Whether a credential (a bearer token or a basic-auth password) is
    /// one of the hub's own, to be removed before any app sees it. Called on
    /// every request that carries one, so it must be cheap (a format check,
    /// not a lookup). The default recognises none.
    fn is_hub_credential(&self, credential: &str) -> bool {
        let _ = credential;
        false
    }
}

/// Accepts nothing: private Spaces are unreachable. The default.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl AccessChecker for DenyAll {
    fn allows<'a>(&'a self, _: &'a SpaceId, _: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

/// A fixed token list per Space (the routes file's `tokens:` section).
#[derive(Debug, Default, Clone)]
pub struct StaticTokens {
    tokens: HashMap<SpaceId, HashSet<String>>,
}

impl StaticTokens {
    /// From a map of Space to accepted tokens.
    pub fn new(tokens: HashMap<SpaceId, HashSet<String>>) -> Self {
        Self { tokens }
    }
}

impl AccessChecker for StaticTokens {
    fn allows<'a>(&'a self, space: &'a SpaceId, token: &'a str) -> BoxFuture<'a, bool> {
        let ok = self
            .tokens
            .get(space)
            .is_some_and(|set| set.contains(token));
        Box::pin(async move { ok })
    }
}

/// Where a token was found, so it can be removed before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFrom {
    /// `Authorization: Bearer`.
    Bearer,
    /// The hub cookie.
    Cookie,
}

/// The outcome of an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on; strip the consumed bearer token if there was one.
    Allow {
        /// Remove `Authorization` before forwarding.
        strip_authorization: bool,
    },
    /// Answer 404.
    Hide,
}

/// Finds a cookie's value across all Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"'))
            })
        })
}

/// The token a request carries, bearer first, then the named cookie (when
/// one is named: path-routed requests read no cookie).
pub fn token(headers: &HeaderMap, cookie_name: Option<&str>) -> Option<(String, TokenFrom)> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, t)) = v.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && !t.trim().is_empty()
    {
        return Some((t.trim().to_owned(), TokenFrom::Bearer));
    }
    cookie(headers, cookie_name?)
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_owned(), TokenFrom::Cookie))
}

/// The credential in `Authorization`: a bearer token, or the password of
/// basic auth (git's and many tools' way of sending a token).
pub fn authorization_credential(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, p)| p.to_owned());
    }
    None
}

/// Decides whether a request from `client` may reach the Space.
/// `cookie_name` is the cookie that may carry a token (the app cookie on
/// the app's own host; `None` on a path route).
pub async fn decide(
    checker: &dyn AccessChecker,
    space: &SpaceId,
    visibility: Visibility,
    headers: &HeaderMap,
    cookie_name: Option<&str>,
    client: std::net::IpAddr,
) -> Decision {
    if visibility != Visibility::Private {
        // Open to all, but a visitor's hub token is no business of the app.
        let strip_authorization = headers.contains_key(AUTHORIZATION)
            && authorization_credential(headers).is_some_and(|c| checker.is_hub_credential(&c));
        return Decision::Allow {
            strip_authorization,
        };
    }
    match token(headers, cookie_name) {
        Some((t, from)) if checker.allows_from(space, &t, client).await => Decision::Allow {
            strip_authorization: from == TokenFrom::Bearer,
        },
        _ => Decision::Hide,
    }
}

/// Removes one cookie from the Cookie headers, keeping the others.
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    if cookie(headers, name).is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(v) = kept.join("; ").parse()
    {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn checker() -> StaticTokens {
        let mut m = HashMap::new();
        m.insert("a/b".parse().unwrap(), HashSet::from(["good".to_owned()]));
        StaticTokens::new(m)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn private_space_needs_a_token_for_that_space() {
        let c = checker();
        let ab: SpaceId = "a/b".parse().unwrap();
        let other: SpaceId = "x/y".parse().unwrap();
        let p = Visibility::Private;
        let app = Some(APP_COOKIE);
        assert_eq!(
            decide(&c, &ab, p, &headers(&[]), app, LOCAL).await,
            Decision::Hide
        );
        let bearer = headers(&[("authorization", "Bearer good")]);
        assert_eq!(
            decide(&c, &ab, p, &bearer, app, LOCAL).await,
            Decision::Allow {
                strip_authorization: true
            }
        );
        assert_eq!(
            decide(&c, &other, p, &bearer, app, LOCAL).await,
            Decision::Hide
        );
        let cookie = headers(&[("cookie", "x=1; spaceport_app=good")]);
        assert_eq!(
            decide(&c, &ab, p, &cookie, app, LOCAL).await,
            Decision::Allow {
                strip_authorization: false
            }
        );
        assert_eq!(
            decide(&c, &ab, p, &cookie, None, LOCAL).await,
            Decision::Hide,
            "a path route reads no cookie"
        );
        let hub_cookie = headers(&[("cookie", "spaceport_session=good")]);
        assert_eq!(
            decide(&c, &ab, p, &hub_cookie, app, LOCAL).await,
            Decision::Hide,
            "the hub's own cookie opens no app"
        );
        let bad = headers(&[("authorization", "Bearer bad")]);
        assert_eq!(decide(&c, &ab, p, &bad, app, LOCAL).await, Decision::Hide);
        assert_eq!(
            decide(&c, &ab, Visibility::Protected, &headers(&[]), app, LOCAL).await,
            Decision::Allow {
                strip_authorization: false
            }
        );
    }

    /// Recognises tokens starting `hf_` as the hub's.
    struct HubPrefix;

    impl AccessChecker for HubPrefix {
        fn allows<'a>(&'a self, _: &'a SpaceId, _: &'a str) -> BoxFuture<'a, bool> {
            Box::pin(async { false })
        }
        fn is_hub_credential(&self, credential: &str) -> bool {
            credential.starts_with("hf_")
        }
    }

    #[tokio::test]
    async fn a_hub_token_never_reaches_a_public_app_other_credentials_do() {
        let ab: SpaceId = "a/b".parse().unwrap();
        for vis in [Visibility::Public, Visibility::Protected] {
            let hub = headers(&[("authorization", "Bearer hf_visitor")]);
            assert_eq!(
                decide(&HubPrefix, &ab, vis, &hub, None, LOCAL).await,
                Decision::Allow {
                    strip_authorization: true
                }
            );
            // git and many tools send the token as a basic-auth password.
            let basic = headers(&[("authorization", "Basic dXNlcjpoZl92aXNpdG9y")]);
            assert_eq!(
                decide(&HubPrefix, &ab, vis, &basic, None, LOCAL).await,
                Decision::Allow {
                    strip_authorization: true
                }
            );
            let own = headers(&[("authorization", "Bearer app-key-123")]);
            assert_eq!(
                decide(&HubPrefix, &ab, vis, &own, None, LOCAL).await,
                Decision::Allow {
                    strip_authorization: false
                },
                "the app's own scheme is the app's business"
            );
        }
    }

    #[test]
    fn remove_cookie_keeps_the_others() {
        let mut h = headers(&[("cookie", "a=1; spaceport_session=t"), ("cookie", "b=2")]);
        remove_cookie(&mut h, TOKEN_COOKIE);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        let mut only = headers(&[("cookie", "spaceport_session=t")]);
        remove_cookie(&mut only, TOKEN_COOKIE);
        assert!(only.get(COOKIE).is_none());
    }
}
