//! Who am I, and the hub's own administration: users, organizations,
//! memberships and tokens (Hugging Face manages these on its website; a
//! self-hosted hub needs an API for them).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::repos::iso_time;
use super::{ApiError, ApiResult, JsonBody};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::state::{OrgRole, TokenInfo, TokenScope};

fn scope_str(s: TokenScope) -> &'static str {
    match s {
        TokenScope::Read => "read",
        TokenScope::Write => "write",
    }
}

fn role_str(r: OrgRole) -> &'static str {
    match r {
        OrgRole::Read => "read",
        OrgRole::Write => "write",
        OrgRole::Admin => "admin",
    }
}

pub async fn whoami<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let who = caller.required()?;
    let orgs: Vec<Value> = hub
        .store()
        .orgs_of(&who.user.name)?
        .into_iter()
        .map(|(org, role)| {
            json!({
                "type": "org",
                "name": org.name,
                "fullname": org.fullname.clone().unwrap_or_else(|| org.name.clone()),
                "roleInOrg": role_str(role),
            })
        })
        .collect();
    Ok(Json(json!({
        "type": "user",
        "id": who.user.name,
        "name": who.user.name,
        "fullname": who.user.fullname.clone().unwrap_or_else(|| who.user.name.clone()),
        "email": null,
        "emailVerified": false,
        "isPro": false,
        "canPay": false,
        "isAdmin": who.user.admin,
        "orgs": orgs,
        "auth": {
            "type": "access_token",
            "accessToken": {
                "displayName": who.token.label,
                "role": scope_str(who.token.scope),
                "createdAt": iso_time(who.token.created_at),
            }
        }
    })))
}

fn admin(caller: &Caller) -> ApiResult<&super::auth::Identity> {
    let who = caller.writer()?;
    if !who.user.admin {
        return Err(ApiError::forbidden("only an admin may do this"));
    }
    Ok(who)
}

fn parse_scope(s: Option<&str>) -> ApiResult<TokenScope> {
    match s.unwrap_or("write") {
        "read" => Ok(TokenScope::Read),
        "write" => Ok(TokenScope::Write),
        other => Err(ApiError::bad_request(format!(
            "unknown token role '{other}': use read or write"
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    name: String,
    #[serde(default)]
    fullname: Option<String>,
    #[serde(default)]
    admin: bool,
    /// Role of the first token: read or write (default).
    #[serde(default)]
    role: Option<String>,
}

/// Creates a user and a first token for them (shown once).
pub async fn create_user<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<Json<Value>> {
    admin(&caller)?;
    let scope = parse_scope(body.role.as_deref())?;
    let user = hub
        .store()
        .create_user(&body.name, body.fullname.as_deref(), body.admin)?;
    let (info, token) = hub.store().create_token(&user.name, "first token", scope)?;
    Ok(Json(json!({
        "name": user.name,
        "admin": user.admin,
        "token": token,
        "role": scope_str(info.scope),
    })))
}

pub async fn list_users<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    admin(&caller)?;
    let users: Vec<Value> = hub
        .store()
        .users()?
        .into_iter()
        .map(|u| json!({ "name": u.name, "fullname": u.fullname, "admin": u.admin }))
        .collect();
    Ok(Json(Value::Array(users)))
}

#[derive(Debug, Deserialize)]
pub struct NewOrg {
    name: String,
    #[serde(default)]
    fullname: Option<String>,
}

/// Creates an organization; its creator becomes its admin.
pub async fn create_org<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewOrg>,
) -> ApiResult<Json<Value>> {
    let who = caller.writer()?.clone();
    let org = hub
        .store()
        .create_org(&body.name, body.fullname.as_deref())?;
    hub.store()
        .add_member(&org.name, &who.user.name, OrgRole::Admin)?;
    Ok(Json(json!({ "name": org.name })))
}

#[derive(Debug, Deserialize)]
pub struct NewMember {
    user: String,
    #[serde(default)]
    role: Option<String>,
}

/// Adds a member to an organization (its admins and site admins may).
pub async fn add_member<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<NewMember>,
) -> ApiResult<Json<Value>> {
    let who = caller.writer()?.clone();
    let is_org_admin = hub
        .store()
        .orgs_of(&who.user.name)?
        .iter()
        .any(|(o, r)| o.name.eq_ignore_ascii_case(&org) && *r == OrgRole::Admin);
    if !(who.user.admin || is_org_admin) {
        return Err(ApiError::forbidden(format!(
            "only admins of '{org}' may add members"
        )));
    }
    let role = match body.role.as_deref().unwrap_or("write") {
        "read" => OrgRole::Read,
        "write" => OrgRole::Write,
        "admin" => OrgRole::Admin,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown role '{other}': use read, write or admin"
            )));
        }
    };
    hub.store().add_member(&org, &body.user, role)?;
    Ok(Json(
        json!({ "org": org, "user": body.user, "role": role_str(role) }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewToken {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

/// Creates another token for the caller (a read token from a write one,
/// say). The value is shown once.
pub async fn create_token<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<Json<Value>> {
    let who = caller.writer()?.clone();
    let scope = parse_scope(body.role.as_deref())?;
    let label = body.label.unwrap_or_else(|| "token".into());
    let (info, token) = hub.store().create_token(&who.user.name, &label, scope)?;
    Ok(Json(
        json!({ "token": token, "role": scope_str(info.scope), "label": info.label }),
    ))
}

/// A token as the API lists it: never its value or its hash.
fn token_json(t: &TokenInfo, current: Option<i64>) -> Value {
    json!({
        "id": t.id,
        "user": t.user,
        "label": t.label,
        "role": scope_str(t.scope),
        "createdAt": iso_time(t.created_at),
        "lastUsedAt": t.last_used_at.map(iso_time),
        "current": current == Some(t.id),
    })
}

/// The caller's tokens (a read token may list them).
pub async fn list_tokens<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let who = caller.required()?;
    let tokens = hub.store().tokens(&who.user.name)?;
    Ok(Json(Value::Array(
        tokens
            .iter()
            .map(|t| token_json(t, Some(who.token.id)))
            .collect(),
    )))
}

/// Revokes one of the caller's tokens, and the sessions made from it. Another
/// user's token is "not found", whether it exists or not.
pub async fn revoke_token<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let who = caller.writer()?;
    revoke_of(&hub, &who.user.name, &id)
}

fn revoke_of<E: ContainerEngine>(hub: &Hub<E>, user: &str, id: &str) -> ApiResult<Json<Value>> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid token id '{}': expected the number GET /api/tokens lists",
            id.escape_debug()
        ))
    })?;
    if !hub.store().revoke_token(user, id)? {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            format!("token {id} not found among the tokens of {user}"),
        ));
    }
    Ok(Json(json!({ "revoked": id })))
}

/// Any user's tokens (admins only).
pub async fn list_user_tokens<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&caller)?;
    let tokens = hub.store().tokens(&user)?;
    Ok(Json(Value::Array(
        tokens.iter().map(|t| token_json(t, None)).collect(),
    )))
}

/// Revokes any user's token (admins only).
pub async fn revoke_user_token<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Path((user, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    admin(&caller)?;
    revoke_of(&hub, &user, &id)
}
