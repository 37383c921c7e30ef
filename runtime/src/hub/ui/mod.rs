//! The web UI of the hub: the gallery, a Space's page, its settings and
//! analytics, the node's analytics with the GPU panel, and sign-in.
//!
//! Pages are HTML rendered on the server; they show their content without
//! JavaScript, and one small script (served at `/ui/live.js`) makes the
//! stage and the logs follow their server-sent events. The browser signs in
//! with a hub token, which starts a session on the hub; the session's id
//! (never the token) is kept in an HttpOnly cookie the proxy also reads (so
//! a private Space's app opens for its owner), and every POST form carries a
//! CSRF token ([`session`]). The account page ([`account`]) lists the
//! user's tokens and sessions and revokes them. Access follows the API
//! exactly: a Space the viewer may not read is "not found", settings, logs
//! and analytics are its writers'.
//!
//! The rendering modules ([`layout`], [`gallery`], [`space`],
//! [`analytics`], [`charts`]) are pure and unit-tested; [`pages`],
//! [`settings`] and [`live`] gather data and answer requests.

pub mod account;
pub mod analytics;
pub mod charts;
pub mod gallery;
pub mod layout;
pub mod live;
pub mod pages;
pub mod session;
pub mod settings;
pub mod space;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Extension, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use spaceport_proxy::pages::escape as esc;

use super::Hub;
use super::api::auth::{Caller, Identity};
use super::authlimit::AuthFailed;
use crate::config::SpaceConfig;
use crate::engine::ContainerEngine;
use layout::Chrome;
use session::CsrfKey;

/// The store setting that keeps the node's CSRF key.
const KEY_SETTING: &str = "ui_csrf_key";

/// What the UI keeps beside the hub.
#[derive(Debug)]
pub struct UiState {
    pub key: CsrfKey,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure: bool,
    /// Parsed READMEs by Space, with the commit they were read at.
    pub(crate) readmes: Mutex<HashMap<String, (String, Option<SpaceConfig>)>>,
}

type Ui = Extension<Arc<UiState>>;

/// The node's CSRF key, made on first use and kept in the database (so
/// forms stay valid across restarts).
fn load_key<E: ContainerEngine>(hub: &Hub<E>) -> CsrfKey {
    let store = hub.store();
    if let Ok(Some(hex)) = store.setting(KEY_SETTING)
        && let Some(bytes) = from_hex(&hex)
        && bytes.len() >= 32
    {
        return CsrfKey::new(&bytes);
    }
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("no randomness for the UI key; forms will not verify until a restart");
        return CsrfKey::new(b"");
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Err(e) = store.set_setting(KEY_SETTING, &hex) {
        tracing::warn!(error = %e, "failed to keep the UI key; forms will not survive a restart");
    }
    CsrfKey::new(&bytes)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The UI's routes, to be merged into the hub's router.
pub fn router<E: ContainerEngine>(hub: &Hub<E>) -> Router<Hub<E>> {
    let state = Arc::new(UiState {
        key: load_key(hub),
        secure: hub.config().secure(),
        readmes: Mutex::new(HashMap::new()),
    });
    let csp = HeaderValue::from_str(&layout::csp(&spaces_origin(hub.config())))
        .unwrap_or(HeaderValue::from_static(layout::FALLBACK_CSP));
    Router::new()
        .route("/", get(pages::gallery::<E>))
        .route("/analytics", get(pages::node_analytics::<E>))
        .route("/signin", get(signin_page).post(signin::<E>))
        .route("/signout", post(signout::<E>))
        .route("/account", get(account::page::<E>))
        .route("/account/tokens", post(account::create_token::<E>))
        .route("/account/{what}/{id}/revoke", post(account::revoke::<E>))
        .route("/ui/style.css", get(style))
        .route("/ui/live.js", get(script))
        .route("/spaces/{owner}/{name}", get(pages::space::<E>))
        .route("/spaces/{owner}/{name}/settings", get(pages::settings::<E>))
        .route(
            "/spaces/{owner}/{name}/settings/{action}",
            post(settings::action::<E>),
        )
        .route(
            "/spaces/{owner}/{name}/analytics",
            get(pages::space_analytics::<E>),
        )
        .route("/spaces/{owner}/{name}/live", get(live::events::<E>))
        .layer(Extension(state))
        .layer(axum::middleware::map_response(move |mut resp: Response| {
            let csp = csp.clone();
            async move {
                let is_html = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
                if is_html {
                    resp.headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, csp);
                }
                resp
            }
        }))
}

/// The origins of the Spaces' own hosts, as a CSP source:
/// `http://*.localhost:8080`.
pub fn spaces_origin(config: &crate::hub::HubConfig) -> String {
    let scheme = if config.public_url.starts_with("https:") {
        "https"
    } else {
        "http"
    };
    let port = match (scheme, config.port) {
        ("http", 80) | ("https", 443) => String::new(),
        (_, p) => format!(":{p}"),
    };
    format!("{scheme}://*.{}{port}", config.domain)
}

/// Who is looking, as the UI sees it: the session cookie only (an ended or
/// expired session reads as signed out, not as an error).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    /// The session's id (the cookie's value), when signed in.
    pub session: Option<String>,
    /// The session as stored, when signed in.
    pub session_info: Option<crate::state::SessionInfo>,
    /// The pre-sign-in cookie's value.
    pub pre: Option<String>,
}

impl Viewer {
    pub fn identity(&self) -> Option<&Identity> {
        self.caller.0.as_ref()
    }

    /// What CSRF tokens of this browser are bound to.
    pub fn csrf_subject(&self) -> &str {
        self.session
            .as_deref()
            .or(self.pre.as_deref())
            .unwrap_or_default()
    }

    pub fn chrome(&self, ui: &UiState) -> Chrome {
        Chrome {
            user: self.identity().map(|i| i.user.name.clone()),
            csrf: ui.key.token(self.csrf_subject()),
        }
    }

    /// 403 unless `given` is this browser's CSRF token.
    pub fn check_csrf(&self, ui: &UiState, given: Option<&String>) -> Result<(), Box<Response>> {
        let ok = given.is_some_and(|g| ui.key.check(self.csrf_subject(), g));
        if ok {
            Ok(())
        } else {
            Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                &self.chrome(ui),
                "Form expired",
                "This form's security token is missing or does not match your session (it may be from before you signed in or out). Go back, reload the page and try again.",
            )))
        }
    }
}

impl<E: ContainerEngine> FromRequestParts<Hub<E>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub<E>) -> Result<Self, Self::Rejection> {
        let secure = hub.config().secure();
        let session =
            spaceport_proxy::access::cookie(&parts.headers, session::session_cookie_name(secure))
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
        let pre = spaceport_proxy::access::cookie(&parts.headers, session::pre_cookie_name(secure))
            .filter(|t| session::cookie_safe(t))
            .map(str::to_owned);
        let found = match &session {
            Some(t) => {
                let store = hub.store().clone();
                let t = t.clone();
                tokio::task::spawn_blocking(move || store.session_user(&t))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
            None => None,
        };
        let (identity, session_info) = match found {
            Some((user, token, info)) => (Some(Identity { user, token }), Some(info)),
            None => (None, None),
        };
        let session = if identity.is_some() { session } else { None };
        Ok(Viewer {
            caller: Caller(identity),
            session,
            session_info,
            pre,
        })
    }
}

/// An HTML response with the UI's security headers (the content security
/// policy is added by the router's layer, which knows the Spaces' origin).
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A page that says what went wrong.
pub fn error_page(status: StatusCode, chrome: &Chrome, title: &str, text: &str) -> Response {
    html(
        status,
        layout::page(
            title,
            chrome,
            &format!(
                "<h1>{}</h1><p class=\"notice err\">{}</p><p><a href=\"/\">All Spaces</a></p>",
                esc(title),
                esc(text)
            ),
        ),
    )
}

/// The page of a Space that does not exist or may not be seen (the same,
/// so private Spaces stay hidden).
pub fn not_found(chrome: &Chrome, signed_in: bool) -> Response {
    let hint = if signed_in {
        "No such Space, or you may not see it."
    } else {
        "No such Space, or it is private: sign in to see your private Spaces."
    };
    error_page(StatusCode::NOT_FOUND, chrome, "Space not found", hint)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        layout::STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        layout::SCRIPT,
    )
        .into_response()
}

#[derive(Debug, Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a path on this hub (not `//host`, not a URL) is followed after
/// sign-in.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn signin_body(chrome: &Chrome, next: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"notice err\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    layout::page(
        "Sign in",
        chrome,
        &format!(
            "<h1>Sign in</h1>{err}<form method=\"post\" action=\"/signin\" class=\"box\">{}<input type=\"hidden\" name=\"next\" value=\"{}\"><label for=\"token\">Access token</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required size=\"40\"><p class=\"muted\">A token of your user on this hub (<code>spaceport login</code> uses the same). It is kept in an HttpOnly cookie of this browser.</p><button type=\"submit\">Sign in</button></form>",
            layout::csrf_field(&chrome.csrf),
            esc(next)
        ),
    )
}

async fn signin_page(
    Extension(ui): Ui,
    mut viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> Response {
    let mut set_pre = None;
    if viewer.session.is_none() && viewer.pre.is_none() {
        viewer.pre = session::random_value();
        set_pre = viewer.pre.clone();
    }
    let chrome = viewer.chrome(&ui);
    let mut resp = html(
        StatusCode::OK,
        signin_body(&chrome, &safe_next(q.next.as_deref()), None),
    );
    if let Some(v) = set_pre
        && let Ok(c) = HeaderValue::from_str(&session::pre_cookie(&v, ui.secure))
    {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

async fn signin<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = viewer.check_csrf(&ui, form.get("csrf")) {
        return *r;
    }
    let next = safe_next(form.get("next").map(String::as_str));
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    let known = if token.is_empty() {
        None
    } else {
        hub.store().authenticate(token).ok().flatten()
    };
    let Some((_, info)) = known else {
        let mut resp = html(
            StatusCode::UNAUTHORIZED,
            signin_body(
                &viewer.chrome(&ui),
                &next,
                Some("This token is unknown or revoked."),
            ),
        );
        resp.extensions_mut().insert(AuthFailed);
        return resp;
    };
    let created = match hub.store().create_session(info.id) {
        Ok((id, _)) => id,
        Err(e) => {
            tracing::error!(error = %e, "failed to start a session");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &viewer.chrome(&ui),
                "Sign-in failed",
                "failed to start a session on the hub; try again",
            );
        }
    };
    let mut resp = Redirect::to(&next).into_response();
    if let Some(old) = &viewer.session {
        // Signing in again replaces this browser's session.
        let _ = hub.store().end_session(old);
    }
    if let Ok(c) = HeaderValue::from_str(&session::session_cookie(&created, ui.secure)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// A redirect that also drops this browser's session cookie.
pub fn signed_out_redirect(ui: &UiState, to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    if let Ok(c) = HeaderValue::from_str(&session::clear_session_cookie(ui.secure)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

async fn signout<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(id) = &viewer.session {
        if let Err(r) = viewer.check_csrf(&ui, form.get("csrf")) {
            return *r;
        }
        if let Err(e) = hub.store().end_session(id) {
            tracing::error!(error = %e, "failed to end a session");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &viewer.chrome(&ui),
                "Sign-out failed",
                "failed to end the session on the hub; try again",
            );
        }
    }
    signed_out_redirect(&ui, "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/spaces/a/b")), "/spaces/a/b");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn hex_keys_round_trip() {
        assert_eq!(from_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
