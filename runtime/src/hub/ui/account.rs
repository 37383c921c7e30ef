//! The account page (`/account`): the signed-in user's tokens and browser
//! sessions, each with a revoke button, and a form that makes a token (its
//! value is shown once, on the page that answers the form). Changes need a
//! session made from a write token and the form's CSRF token, like every
//! other form. Revoking the token or the session this browser signed in
//! with signs it out. [`render`] is pure; the handlers gather and act.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use serde::Deserialize;
use spaceport_proxy::pages::escape as esc;

use super::{UiState, Viewer, error_page, html, layout, signed_out_redirect};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::api::repos::iso_time;
use crate::state::{SessionInfo, TokenInfo, TokenScope};

type Ui = Extension<Arc<UiState>>;

/// What the account page shows.
#[derive(Debug, Clone, Default)]
pub struct AccountData {
    pub tokens: Vec<TokenInfo>,
    pub sessions: Vec<SessionInfo>,
    /// The token and session this browser is signed in with.
    pub current_token: Option<i64>,
    pub current_session: Option<i64>,
    /// Whether this session may change things (made from a write token).
    pub can_write: bool,
    /// A token just made: its label, scope and value (shown this once).
    pub created: Option<(String, TokenScope, String)>,
    /// What the last form did, or why it was refused.
    pub flash: Option<String>,
    pub error: Option<String>,
}

fn revoke_button(csrf: &str, what: &str, id: i64, enabled: bool) -> String {
    if !enabled {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"/account/{what}/{id}/revoke\" class=\"inline\">{}<button type=\"submit\" class=\"danger\">Revoke</button></form>",
        layout::csrf_field(csrf)
    )
}

/// The page's body.
pub fn render(data: &AccountData, csrf: &str) -> String {
    let mut out = String::from("<h1>Tokens and sessions</h1>");
    if let Some(f) = &data.flash {
        out.push_str(&format!(
            "<p class=\"notice ok\" role=\"status\">{}</p>",
            esc(f)
        ));
    }
    if let Some(e) = &data.error {
        out.push_str(&format!(
            "<p class=\"notice err\" role=\"alert\">{}</p>",
            esc(e)
        ));
    }
    if let Some((label, scope, value)) = &data.created {
        out.push_str(&format!(
            "<div class=\"notice ok\"><p>New {} token <b>{}</b>. Copy it now: it is not shown again.</p><pre class=\"snippet\"><code id=\"new-token\">{}</code></pre></div>",
            esc(scope.as_str()),
            esc(label),
            esc(value)
        ));
    }
    if !data.can_write {
        out.push_str("<p class=\"notice\">This browser signed in with a read token: it can see but not change tokens and sessions. Sign in with a write token to change them.</p>");
    }
    out.push_str("<h2>Tokens</h2><table><thead><tr><th>Label</th><th>Role</th><th>Created</th><th>Last used</th><th></th></tr></thead><tbody>");
    for t in &data.tokens {
        let this = if data.current_token == Some(t.id) {
            " <span class=\"muted\">(this browser's)</span>"
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr data-token=\"{}\"><td>{}{this}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.id,
            esc(&t.label),
            esc(t.scope.as_str()),
            esc(&iso_time(t.created_at)),
            esc(&t.last_used_at.map(iso_time).unwrap_or_else(|| "never".into())),
            revoke_button(csrf, "tokens", t.id, data.can_write)
        ));
    }
    out.push_str("</tbody></table>");
    if data.can_write {
        out.push_str(&format!(
            "<h2>New token</h2><form method=\"post\" action=\"/account/tokens\" class=\"box\">{}<label for=\"t-label\">Label</label><input id=\"t-label\" name=\"label\" maxlength=\"128\" required><label for=\"t-role\">Role</label><select id=\"t-role\" name=\"role\"><option value=\"read\">read</option><option value=\"write\">write</option></select> <button type=\"submit\">Create token</button></form>",
            layout::csrf_field(csrf)
        ));
    }
    out.push_str("<h2>Browser sessions</h2><table><thead><tr><th>Token</th><th>Role</th><th>Signed in</th><th>Last seen</th><th>Expires</th><th></th></tr></thead><tbody>");
    for s in &data.sessions {
        let this = if data.current_session == Some(s.id) {
            " <span class=\"muted\">(this browser)</span>"
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr data-session=\"{}\"><td>{}{this}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.id,
            esc(&s.token_label),
            esc(s.scope.as_str()),
            esc(&iso_time(s.created_at)),
            esc(&iso_time(s.last_seen_at)),
            esc(&iso_time(s.expires_at)),
            revoke_button(csrf, "sessions", s.id, data.can_write)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

fn gather<E: ContainerEngine>(hub: &Hub<E>, viewer: &Viewer) -> AccountData {
    let Some(who) = viewer.identity() else {
        return AccountData::default();
    };
    AccountData {
        tokens: hub.store().tokens(&who.user.name).unwrap_or_default(),
        sessions: hub.store().sessions(&who.user.name).unwrap_or_default(),
        current_token: Some(who.token.id),
        current_session: viewer.session_info.as_ref().map(|s| s.id),
        can_write: who.can_write(),
        ..AccountData::default()
    }
}

fn respond(ui: &UiState, viewer: &Viewer, status: StatusCode, data: &AccountData) -> Response {
    let chrome = viewer.chrome(ui);
    html(
        status,
        layout::page("Tokens and sessions", &chrome, &render(data, &chrome.csrf)),
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct AccountQuery {
    #[serde(default)]
    done: Option<String>,
}

pub async fn page<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Query(q): Query<AccountQuery>,
) -> Response {
    if viewer.identity().is_none() {
        return Redirect::to("/signin?next=/account").into_response();
    }
    let mut data = gather(&hub, &viewer);
    data.flash = match q.done.as_deref() {
        Some("token") => Some("Token revoked.".into()),
        Some("session") => Some("Session ended.".into()),
        _ => None,
    };
    respond(&ui, &viewer, StatusCode::OK, &data)
}

/// The checks every form of this page makes: CSRF, signed in, write scope.
fn may_change(ui: &UiState, viewer: &Viewer, form: &HashMap<String, String>) -> Option<Response> {
    if let Err(r) = viewer.check_csrf(ui, form.get("csrf")) {
        return Some(*r);
    }
    match viewer.identity() {
        None => Some(Redirect::to("/signin?next=/account").into_response()),
        Some(who) if !who.can_write() => Some(error_page(
            StatusCode::FORBIDDEN,
            &viewer.chrome(ui),
            "Read-only session",
            "This browser signed in with a read token: sign in with a write token to change tokens and sessions.",
        )),
        Some(_) => None,
    }
}

pub async fn create_token<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = may_change(&ui, &viewer, &form) {
        return r;
    }
    let Some(who) = viewer.identity() else {
        return Redirect::to("/signin?next=/account").into_response();
    };
    let label = form.get("label").map(|l| l.trim()).unwrap_or_default();
    let scope = form
        .get("role")
        .map(|r| r.parse::<TokenScope>())
        .unwrap_or(Ok(TokenScope::Read));
    let made = scope.and_then(|scope| hub.store().create_token(&who.user.name, label, scope));
    let mut data = gather(&hub, &viewer);
    match made {
        Ok((info, value)) => {
            data.created = Some((info.label, info.scope, value));
            respond(&ui, &viewer, StatusCode::OK, &data)
        }
        Err(e) => {
            data.error = Some(e.to_string());
            respond(&ui, &viewer, StatusCode::BAD_REQUEST, &data)
        }
    }
}

pub async fn revoke<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((what, id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = may_change(&ui, &viewer, &form) {
        return r;
    }
    let Some(who) = viewer.identity() else {
        return Redirect::to("/signin?next=/account").into_response();
    };
    let Ok(id) = id.parse::<i64>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            &viewer.chrome(&ui),
            "Not found",
            "No such token or session.",
        );
    };
    let user = &who.user.name;
    let (done, ends_this_browser) = match what.as_str() {
        "tokens" => (hub.store().revoke_token(user, id), who.token.id == id),
        "sessions" => (
            hub.store().revoke_session(user, id),
            viewer.session_info.as_ref().is_some_and(|s| s.id == id),
        ),
        _ => (Ok(false), false),
    };
    match done {
        Ok(true) if ends_this_browser => signed_out_redirect(&ui, "/"),
        Ok(true) => Redirect::to(&format!(
            "/account?done={}",
            if what == "tokens" { "token" } else { "session" }
        ))
        .into_response(),
        Ok(false) => {
            let mut data = gather(&hub, &viewer);
            data.error = Some("failed to revoke it: no such token or session of yours".into());
            respond(&ui, &viewer, StatusCode::NOT_FOUND, &data)
        }
        Err(e) => {
            let mut data = gather(&hub, &viewer);
            data.error = Some(format!("failed to revoke it: {e}"));
            respond(&ui, &viewer, StatusCode::INTERNAL_SERVER_ERROR, &data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: i64, label: &str, scope: TokenScope) -> TokenInfo {
        TokenInfo {
            id,
            user: "alice".into(),
            label: label.into(),
            scope,
            created_at: 1_700_000_000,
            last_used_at: None,
        }
    }

    #[test]
    fn the_page_escapes_labels_and_shows_a_new_value_once() {
        let data = AccountData {
            tokens: vec![token(3, "<script>x</script>", TokenScope::Write)],
            current_token: Some(3),
            can_write: true,
            created: Some(("ci & cd".into(), TokenScope::Read, "sp_new\"value".into())),
            ..AccountData::default()
        };
        let page = render(&data, "csrf-1");
        assert!(!page.contains("<script>x"), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"), "{page}");
        assert!(page.contains("ci &amp; cd"), "{page}");
        assert!(page.contains("sp_new&quot;value"), "{page}");
        assert!(
            page.contains("action=\"/account/tokens/3/revoke\""),
            "{page}"
        );
        assert!(page.contains("name=\"csrf\" value=\"csrf-1\""), "{page}");
        assert!(page.contains("(this browser's)"), "{page}");
    }

    #[test]
    fn a_read_only_session_gets_no_forms() {
        let data = AccountData {
            tokens: vec![token(3, "laptop", TokenScope::Read)],
            can_write: false,
            ..AccountData::default()
        };
        let page = render(&data, "csrf-1");
        assert!(!page.contains("<form"), "{page}");
        assert!(page.contains("read token"), "{page}");
    }
}
