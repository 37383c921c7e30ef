//! Access: who may open a private Space.
//!
//! Public and protected Spaces are open. A private Space answers 404, the same
//! page as a Space that does not exist, unless the request carries a token
//! (`Authorization: Bearer <token>` or the hub's sign-in cookie) that the
//! [`AccessChecker`] accepts for that very Space. A token the proxy consumed is
//! removed before the request reaches the app, so a Space's code never sees
//! its visitors' hub credentials. This module decides; it does not route or
//! render pages.

use std::collections::{HashMap, HashSet};

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::route::{BoxFuture, SpaceId, Visibility};

/// Name of the cookie the hub sets after sign-in. It holds a session id,
/// not a token; the hub's [`AccessChecker`] accepts either.
pub const TOKEN_COOKIE: &str = "spaceport_session";

/// Checks tokens for private Spaces. The runtime implements it against its
/// user database; the controller against the hub's API. It is called on every
/// request to a private Space that carries a token, so implementations should
/// cache.
pub trait AccessChecker: Send + Sync + 'static {
    /// Whether `token` may open `space`.
    fn allows<'a>(&'a self, space: &'a SpaceId, token: &'a str) -> BoxFuture<'a, bool>;
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

/// The token a request carries, bearer first.
pub fn token(headers: &HeaderMap, cookie_name: &str) -> Option<(String, TokenFrom)> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, t)) = v.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && !t.trim().is_empty()
    {
        return Some((t.trim().to_owned(), TokenFrom::Bearer));
    }
    cookie(headers, cookie_name)
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_owned(), TokenFrom::Cookie))
}

/// Decides whether a request may reach the Space.
pub async fn decide(
    checker: &dyn AccessChecker,
    space: &SpaceId,
    visibility: Visibility,
    headers: &HeaderMap,
    cookie_name: &str,
) -> Decision {
    if visibility != Visibility::Private {
        return Decision::Allow {
            strip_authorization: false,
        };
    }
    match token(headers, cookie_name) {
        Some((t, from)) if checker.allows(space, &t).await => Decision::Allow {
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
        assert_eq!(
            decide(&c, &ab, p, &headers(&[]), TOKEN_COOKIE).await,
            Decision::Hide
        );
        let bearer = headers(&[("authorization", "Bearer good")]);
        assert_eq!(
            decide(&c, &ab, p, &bearer, TOKEN_COOKIE).await,
            Decision::Allow {
                strip_authorization: true
            }
        );
        assert_eq!(
            decide(&c, &other, p, &bearer, TOKEN_COOKIE).await,
            Decision::Hide
        );
        let cookie = headers(&[("cookie", "x=1; spaceport_session=good")]);
        assert_eq!(
            decide(&c, &ab, p, &cookie, TOKEN_COOKIE).await,
            Decision::Allow {
                strip_authorization: false
            }
        );
        let bad = headers(&[("authorization", "Bearer bad")]);
        assert_eq!(decide(&c, &ab, p, &bad, TOKEN_COOKIE).await, Decision::Hide);
        assert_eq!(
            decide(&c, &ab, Visibility::Protected, &headers(&[]), TOKEN_COOKIE).await,
            Decision::Allow {
                strip_authorization: false
            }
        );
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
