//! Access tokens. A token belongs to a user and has a scope; only the
//! SHA-256 of its value is stored, so the value is shown once, at creation.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::people::owner_id;
use super::{Result, StateError, Store, User, now};

/// Prefix of the tokens this hub creates (imported ones may differ).
pub const TOKEN_PREFIX: &str = "sp_";
/// Shortest value [`Store::import_token`] accepts.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token value looked at.
pub(super) const MAX_TOKEN_LEN: usize = 1024;
/// `last_used_at` is written at most this often per token, in seconds.
const LAST_USED_GRANULARITY: i64 = 60;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Read what the user may read.
    Read,
    /// Also write what the user may write.
    Write,
}

impl TokenScope {
    /// `"read"` or `"write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }

    /// Whether the scope allows writing.
    pub fn can_write(self) -> bool {
        self == TokenScope::Write
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            other => Err(StateError::Invalid(format!(
                "invalid token scope '{}' (expected read or write)",
                other.escape_debug()
            ))),
        }
    }
}

/// A token as listed: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token's id, for revoking it.
    pub id: i64,
    /// The user it belongs to.
    pub user: String,
    /// The user's name for it.
    pub label: String,
    /// What it allows.
    pub scope: TokenScope,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, to the minute; None when never used.
    pub last_used_at: Option<i64>,
}

/// The stored form of a token: the hex SHA-256 of its value.
pub(super) fn hash_token(value: &str) -> String {
    let d = digest(&SHA256, value.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in d.as_ref() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    hex
}

fn validate_label(label: &str) -> Result<()> {
    if label.trim().is_empty() || label.chars().count() > 128 || label.chars().any(char::is_control)
    {
        return Err(StateError::Invalid(
            "invalid token label: it must be 1-128 characters without control characters".into(),
        ));
    }
    Ok(())
}

pub(super) const INFO_COLUMNS: &str =
    "t.id, u.name AS user, t.label, t.scope, t.created_at, t.last_used_at";

/// The user of a row selected with [`INFO_COLUMNS`] and `u.fullname,
/// u.admin, u.created_at AS user_created_at`.
pub(super) fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get("user")?,
        fullname: r.get("fullname")?,
        admin: r.get("admin")?,
        created_at: r.get("user_created_at")?,
    })
}

pub(super) fn info_from_row(r: &Row<'_>) -> rusqlite::Result<(TokenInfo, String)> {
    Ok((
        TokenInfo {
            id: r.get("id")?,
            user: r.get("user")?,
            label: r.get("label")?,
            scope: TokenScope::Read,
            created_at: r.get("created_at")?,
            last_used_at: r.get("last_used_at")?,
        },
        r.get("scope")?,
    ))
}

pub(super) fn with_scope((mut info, scope): (TokenInfo, String)) -> Result<TokenInfo> {
    info.scope = scope.parse()?;
    Ok(info)
}

impl Store {
    /// Creates a token for `user`. Returns its description and its value;
    /// the value is not stored and cannot be shown again.
    pub fn create_token(
        &self,
        user: &str,
        label: &str,
        scope: TokenScope,
    ) -> Result<(TokenInfo, String)> {
        validate_label(label)?;
        let mut random = [0u8; 32];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| StateError::Crypto("failed to get random bytes for a token".into()))?;
        let value = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let info = insert_token(&self.conn(), user, label, scope, &hash_token(&value))?;
        Ok((info, value))
    }

    /// Stores a token whose value comes from elsewhere (the admin token of
    /// the node's configuration). Idempotent: when `user` already holds a
    /// token of that value, its label and scope are set and it is returned.
    /// Fails with `AlreadyExists` when another user holds that value.
    pub fn import_token(
        &self,
        user: &str,
        label: &str,
        scope: TokenScope,
        value: &str,
    ) -> Result<TokenInfo> {
        validate_label(label)?;
        if value.len() < MIN_TOKEN_LEN
            || value.len() > MAX_TOKEN_LEN
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(StateError::Invalid(format!(
                "invalid token: it must be {MIN_TOKEN_LEN}-{MAX_TOKEN_LEN} printable ASCII \
                 characters without spaces"
            )));
        }
        let hash = hash_token(value);
        let conn = self.conn();
        let existing = conn
            .query_row(
                &format!(
                    "SELECT {INFO_COLUMNS} FROM tokens t JOIN owners u ON u.id = t.user_id \
                     WHERE t.hash = ?1"
                ),
                [&hash],
                info_from_row,
            )
            .optional()?;
        match existing.map(with_scope).transpose()? {
            Some(info) if info.user.eq_ignore_ascii_case(user) => {
                conn.execute(
                    "UPDATE tokens SET label = ?2, scope = ?3 WHERE id = ?1",
                    params![info.id, label, scope.as_str()],
                )?;
                Ok(TokenInfo {
                    label: label.to_owned(),
                    scope,
                    ..info
                })
            }
            Some(_) => Err(StateError::AlreadyExists(
                "a token with this value (held by another user)".into(),
            )),
            None => insert_token(&conn, user, label, scope, &hash),
        }
    }

    /// The user and token a token value stands for, or None. Looks the value
    /// up by its hash (so timing reveals nothing about stored values) and
    /// notes the use, at most once a minute per token.
    pub fn authenticate(&self, token: &str) -> Result<Option<(User, TokenInfo)>> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let hash = hash_token(token);
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!(
                    "SELECT {INFO_COLUMNS}, u.fullname, u.admin, u.created_at AS user_created_at \
                     FROM tokens t JOIN owners u ON u.id = t.user_id \
                     WHERE t.hash = ?1 AND u.kind = 'user'"
                ),
                [&hash],
                |r| Ok((user_from_row(r)?, info_from_row(r)?)),
            )
            .optional()?;
        let Some((user, info)) = found else {
            return Ok(None);
        };
        let mut info = with_scope(info)?;
        let t = now();
        if info
            .last_used_at
            .is_none_or(|last| t - last >= LAST_USED_GRANULARITY || t < last)
        {
            conn.execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
                params![info.id, t],
            )?;
            info.last_used_at = Some(t);
        }
        Ok(Some((user, info)))
    }

    /// The tokens of `user`, oldest first.
    pub fn tokens(&self, user: &str) -> Result<Vec<TokenInfo>> {
        let conn = self.conn();
        let user_id = owner_id(&conn, "user", user)?
            .ok_or_else(|| StateError::NotFound(format!("user '{user}'")))?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {INFO_COLUMNS} FROM tokens t JOIN owners u ON u.id = t.user_id \
             WHERE t.user_id = ?1 ORDER BY t.id"
        ))?;
        let rows = stmt
            .query_map([user_id], info_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(with_scope).collect()
    }

    /// Deletes token `token_id` of `user`; false when `user` has no such
    /// token.
    pub fn revoke_token(&self, user: &str, token_id: i64) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM tokens WHERE id = ?1 AND \
             user_id = (SELECT id FROM owners WHERE kind = 'user' AND name = ?2)",
            params![token_id, user],
        )?;
        Ok(n > 0)
    }
}

fn insert_token(
    conn: &rusqlite::Connection,
    user: &str,
    label: &str,
    scope: TokenScope,
    hash: &str,
) -> Result<TokenInfo> {
    let (user_id, canonical): (i64, String) = conn
        .query_row(
            "SELECT id, name FROM owners WHERE kind = 'user' AND name = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| StateError::NotFound(format!("user '{user}'")))?;
    let created_at = now();
    conn.execute(
        "INSERT INTO tokens (user_id, label, scope, hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, label, scope.as_str(), hash, created_at],
    )?;
    Ok(TokenInfo {
        id: conn.last_insert_rowid(),
        user: canonical,
        label: label.to_owned(),
        scope,
        created_at,
        last_used_at: None,
    })
}
