//! Who is calling, and what they may do.
//!
//! A token comes as `Authorization: Bearer <token>` (the client's way) or as
//! the password of HTTP basic auth (git's way); a browser instead sends the
//! id of its session (see [`crate::state::SessionInfo`]) in the hub's cookie,
//! never a token. Credentials that are sent but unknown are refused with 401
//! rather than treated as anonymous, so a typo is not silently downgraded,
//! and count against the client's address ([`crate::hub::authlimit`]).
//!
//! The cookie signs in reads only (GET and HEAD): a browser sends it with
//! whatever a page of the same site asks for (Spaces may live on subdomains
//! of the hub), so a change through the API needs the token in a header,
//! which no other page can add. The web UI's forms are protected by their
//! own CSRF tokens instead.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;

use super::{ApiError, ApiResult};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::authlimit::ClientAddr;
use crate::plan::SpaceId;
use crate::repos::RepoKind;
use crate::state::{Repo, TokenInfo, TokenScope, User};

/// The name of the hub's session cookie over plain HTTP (the proxy strips
/// it from requests to apps and refuses it from them).
pub const TOKEN_COOKIE: &str = spaceport_proxy::access::TOKEN_COOKIE;

/// The session cookie's name over HTTPS. A browser accepts a `__Host-`
/// cookie only from the host itself (Secure, `Path=/`, no `Domain`), so an
/// app on a subdomain of the hub cannot plant one for the hub ("cookie
/// tossing"); the unprefixed name is then not read at all.
pub const SECURE_TOKEN_COOKIE: &str = "__Host-spaceport_session";

/// The session cookie's name on a hub served over HTTPS (`secure`) or not.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_TOKEN_COOKIE
    } else {
        TOKEN_COOKIE
    }
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub token: TokenInfo,
}

impl Identity {
    pub fn can_write(&self) -> bool {
        self.token.scope == TokenScope::Write
    }
}

/// The caller of a request: signed in or anonymous.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Identity>);

/// The token a request carries in its headers (bearer or basic), if any;
/// the cookie is not looked at (see [`request_token_or_cookie`]).
pub fn request_token(headers: &http::HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_owned());
        }
        if let Some(b) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            return Some(password.to_owned());
        }
        return None;
    }
    None
}

/// What a request signs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token, from the Authorization header.
    Token(String),
    /// A session id, from the hub's cookie.
    Session(String),
}

/// The credential of a request: the token in its headers, else, for a read
/// (GET or HEAD), the session in its cookie (named `cookie`, see
/// [`session_cookie_name`]).
pub fn request_credential(
    method: &http::Method,
    headers: &http::HeaderMap,
    cookie: &str,
) -> Option<Credential> {
    if headers.contains_key(http::header::AUTHORIZATION) {
        return request_token(headers).map(Credential::Token);
    }
    if method != http::Method::GET && method != http::Method::HEAD {
        return None;
    }
    spaceport_proxy::access::cookie(headers, cookie)
        .filter(|t| !t.is_empty())
        .map(|t| Credential::Session(t.to_owned()))
}

/// Marks a request whose failed credentials were counted already (the
/// caller may be looked up more than once per request).
#[derive(Debug, Clone, Copy)]
struct FailureCounted;

/// Counts a failed authentication against the request's client address.
pub fn count_failure<E: ContainerEngine>(hub: &Hub<E>, parts: &mut Parts) {
    if parts.extensions.get::<FailureCounted>().is_some() {
        return;
    }
    parts.extensions.insert(FailureCounted);
    if let Some(ClientAddr(ip)) = parts.extensions.get::<ClientAddr>().copied() {
        hub.auth_limiter().failed(ip, std::time::Instant::now());
    }
}

impl<E: ContainerEngine> FromRequestParts<Hub<E>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub<E>) -> Result<Self, ApiError> {
        let cookie = session_cookie_name(hub.config().secure());
        let Some(credential) = request_credential(&parts.method, &parts.headers, cookie) else {
            return Ok(Caller(None));
        };
        let found = match &credential {
            Credential::Token(token) => hub.store().authenticate(token)?,
            Credential::Session(session) => hub
                .store()
                .session_user(session)?
                .map(|(user, token, _)| (user, token)),
        };
        match found {
            Some((user, token)) => Ok(Caller(Some(Identity { user, token }))),
            None => {
                count_failure(hub, parts);
                Err(ApiError::unauthorized(match credential {
                    Credential::Token(_) => {
                        "Invalid credentials in Authorization header: the token is unknown or revoked"
                    }
                    Credential::Session(_) => {
                        "the session of this cookie ended or expired: sign in again"
                    }
                }))
            }
        }
    }
}

impl Caller {
    /// The signed-in caller, or 401.
    pub fn required(&self) -> ApiResult<&Identity> {
        self.0.as_ref().ok_or_else(|| {
            ApiError::unauthorized(
                "this needs a token: send Authorization: Bearer <token> (create one with the admin token)",
            )
        })
    }

    /// A caller with a write token, or 401/403.
    pub fn writer(&self) -> ApiResult<&Identity> {
        let id = self.required()?;
        if !id.can_write() {
            return Err(ApiError::forbidden(
                "this token is read-only: use a token with the write role",
            ));
        }
        Ok(id)
    }
}

/// Parses `owner/name` from path parts, tolerating a `.git` suffix.
pub fn repo_id(kind: RepoKind, owner: &str, name: &str) -> ApiResult<SpaceId> {
    let name = name.strip_suffix(".git").unwrap_or(name);
    SpaceId::parse(&format!("{owner}/{name}"))
        .map_err(|_| ApiError::repo_not_found(kind, &format!("{owner}/{name}")))
}

/// The repo, if the caller may read it; 404 otherwise (hidden repos look
/// missing).
pub fn readable<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    id: &SpaceId,
) -> ApiResult<Repo> {
    let repo = hub
        .store()
        .repo(kind, id)?
        .ok_or_else(|| ApiError::repo_not_found(kind, &id.to_string()))?;
    if !repo.private {
        return Ok(repo);
    }
    let allowed = match &caller.0 {
        Some(who) => hub.store().can_read(&who.user, repo.id.owner())?,
        None => false,
    };
    if allowed {
        Ok(repo)
    } else {
        Err(ApiError::repo_not_found(kind, &id.to_string()))
    }
}

/// The repo, if the caller may change it: 404 when they may not even see
/// it, 403 when they may see but not change it.
pub fn writable<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    id: &SpaceId,
) -> ApiResult<(Repo, Identity)> {
    let who = caller.required()?.clone();
    let repo = readable(hub, caller, kind, id)?;
    if !hub.store().can_write(&who.user, repo.id.owner())? {
        return Err(ApiError::forbidden(format!(
            "{} may not change {}: only its owner and members of its organization with write access may",
            who.user.name, repo.id
        )));
    }
    if !who.can_write() {
        return Err(ApiError::forbidden(
            "this token is read-only: use a token with the write role",
        ));
    }
    Ok((repo, who))
}

/// The `{owner}` and `{name}` of a Space route.
async fn space_path<E: ContainerEngine>(parts: &mut Parts, hub: &Hub<E>) -> ApiResult<SpaceId> {
    let axum::extract::Path(params) = axum::extract::Path::<
        std::collections::HashMap<String, String>,
    >::from_request_parts(parts, hub)
    .await
    .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    let (Some(owner), Some(name)) = (params.get("owner"), params.get("name")) else {
        return Err(ApiError::bad_request("the path names no Space"));
    };
    repo_id(RepoKind::Space, owner, name)
}

/// A Space from the path that the caller may read (404 otherwise).
#[derive(Debug, Clone)]
pub struct ReadableSpace(pub Repo);

impl<E: ContainerEngine> FromRequestParts<Hub<E>> for ReadableSpace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub<E>) -> Result<Self, ApiError> {
        let id = space_path(parts, hub).await?;
        let caller = Caller::from_request_parts(parts, hub).await?;
        readable(hub, &caller, RepoKind::Space, &id).map(ReadableSpace)
    }
}

/// A Space from the path that the caller may change (404 when they may
/// not see it, 403 when they may only see it).
#[derive(Debug, Clone)]
pub struct WritableSpace(pub Repo);

impl<E: ContainerEngine> FromRequestParts<Hub<E>> for WritableSpace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub<E>) -> Result<Self, ApiError> {
        let id = space_path(parts, hub).await?;
        let caller = Caller::from_request_parts(parts, hub).await?;
        writable(hub, &caller, RepoKind::Space, &id).map(|(repo, _)| WritableSpace(repo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cookie_signs_in_reads_only_and_holds_a_session() {
        let cookie = headers(&[("cookie", "spaceport_session=sps_abc")]);
        assert_eq!(
            request_credential(&http::Method::GET, &cookie, TOKEN_COOKIE),
            Some(Credential::Session("sps_abc".into()))
        );
        assert_eq!(
            request_credential(&http::Method::POST, &cookie, TOKEN_COOKIE),
            None
        );
        assert_eq!(
            request_credential(&http::Method::DELETE, &cookie, TOKEN_COOKIE),
            None
        );
        assert_eq!(request_token(&cookie), None, "git never reads the cookie");
        let old = headers(&[("cookie", "spaceport_token=hf_abc")]);
        assert_eq!(
            request_credential(&http::Method::GET, &old, TOKEN_COOKIE),
            None,
            "the old raw-token cookie is not honoured"
        );
        let bearer = headers(&[
            ("authorization", "Bearer hf_xyz"),
            ("cookie", "spaceport_session=sps_abc"),
        ]);
        assert_eq!(
            request_credential(&http::Method::POST, &bearer, TOKEN_COOKIE),
            Some(Credential::Token("hf_xyz".into()))
        );
    }

    #[test]
    fn over_https_only_the_host_only_cookie_is_read() {
        let secure = session_cookie_name(true);
        assert!(secure.starts_with("__Host-"));
        // A cookie without the prefix may have come from a subdomain.
        let tossed = headers(&[("cookie", "spaceport_session=sps_attacker")]);
        assert_eq!(
            request_credential(&http::Method::GET, &tossed, secure),
            None
        );
        let own = headers(&[("cookie", "__Host-spaceport_session=sps_mine")]);
        assert_eq!(
            request_credential(&http::Method::GET, &own, secure),
            Some(Credential::Session("sps_mine".into()))
        );
    }
}
