//! Browser sessions. Signing in to the web UI with a token makes a session:
//! a random id that the browser keeps in its cookie instead of the token.
//! Only the SHA-256 of the id is stored, so the database cannot be replayed
//! as cookies. A session belongs to the token it was made from: it has that
//! token's user and scope (a session of a read token only reads), and it
//! ends when the token is revoked (the row goes with the token). It also
//! ends at sign-out and [`SESSION_TTL_SECS`] after sign-in, whatever its use:
//! a fixed lifetime bounds what a stolen cookie is worth.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::people::owner_id;
use super::tokens::{
    INFO_COLUMNS, MAX_TOKEN_LEN, TokenInfo, TokenScope, hash_token, info_from_row, user_from_row,
    with_scope,
};
use super::{Result, StateError, Store, User, now};

/// How long a session lasts after sign-in, in seconds (seven days).
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;
/// Prefix of session ids (so a leaked one is recognisable for what it is).
pub const SESSION_PREFIX: &str = "sps_";
/// `last_seen_at` is written at most this often per session, in seconds.
const LAST_SEEN_GRANULARITY: i64 = 60;

/// A session as listed: everything but its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The row's number, for ending it from a list.
    pub id: i64,
    /// The user it signs in.
    pub user: String,
    /// The token it was made from.
    pub token_id: i64,
    /// That token's label.
    pub token_label: String,
    /// That token's scope, which the session has too.
    pub scope: TokenScope,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the session is refused from then on.
    pub expires_at: i64,
    /// Unix seconds, to the minute.
    pub last_seen_at: i64,
}

const SESSION_COLUMNS: &str = "s.id AS session_id, s.token_id, s.created_at AS session_created_at, \
     s.expires_at, s.last_seen_at";

fn session_from_row(r: &rusqlite::Row<'_>, token: &TokenInfo) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get("session_id")?,
        user: token.user.clone(),
        token_id: r.get("token_id")?,
        token_label: token.label.clone(),
        scope: token.scope,
        created_at: r.get("session_created_at")?,
        expires_at: r.get("expires_at")?,
        last_seen_at: r.get("last_seen_at")?,
    })
}

impl Store {
    /// Starts a session from token `token_id` (a token the caller just
    /// authenticated). Returns the session's id, to go into the cookie; it
    /// is not stored and cannot be shown again. Expired sessions are
    /// dropped on the way, so the table does not grow without bound.
    pub fn create_session(&self, token_id: i64) -> Result<(String, SessionInfo)> {
        self.create_session_at(token_id, now())
    }

    pub(super) fn create_session_at(&self, token_id: i64, t: i64) -> Result<(String, SessionInfo)> {
        let mut random = [0u8; 32];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| StateError::Crypto("failed to get random bytes for a session".into()))?;
        let value = format!("{SESSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [t])?;
        let token = conn
            .query_row(
                &format!(
                    "SELECT {INFO_COLUMNS} FROM tokens t JOIN owners u ON u.id = t.user_id \
                     WHERE t.id = ?1 AND u.kind = 'user'"
                ),
                [token_id],
                info_from_row,
            )
            .optional()?
            .ok_or_else(|| StateError::NotFound(format!("token {token_id}")))?;
        let token = with_scope(token)?;
        let expires_at = t.saturating_add(SESSION_TTL_SECS);
        conn.execute(
            "INSERT INTO sessions (hash, token_id, created_at, expires_at, last_seen_at) \
             VALUES (?1, ?2, ?3, ?4, ?3)",
            params![hash_token(&value), token_id, t, expires_at],
        )?;
        let info = SessionInfo {
            id: conn.last_insert_rowid(),
            user: token.user.clone(),
            token_id,
            token_label: token.label.clone(),
            scope: token.scope,
            created_at: t,
            expires_at,
            last_seen_at: t,
        };
        Ok((value, info))
    }

    /// The user, token and session a session id stands for, or None when
    /// it is unknown, ended or expired. Looks the id up by its hash, like
    /// [`Store::authenticate`] does tokens.
    pub fn session_user(&self, session: &str) -> Result<Option<(User, TokenInfo, SessionInfo)>> {
        self.session_user_at(session, now())
    }

    pub(super) fn session_user_at(
        &self,
        session: &str,
        t: i64,
    ) -> Result<Option<(User, TokenInfo, SessionInfo)>> {
        if session.is_empty() || session.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!(
                    "SELECT {INFO_COLUMNS}, {SESSION_COLUMNS}, u.fullname, u.admin, \
                     u.created_at AS user_created_at \
                     FROM sessions s JOIN tokens t ON t.id = s.token_id \
                     JOIN owners u ON u.id = t.user_id \
                     WHERE s.hash = ?1 AND s.expires_at > ?2 AND u.kind = 'user'"
                ),
                params![hash_token(session), t],
                |r| {
                    let user = user_from_row(r)?;
                    let token = info_from_row(r)?;
                    let session = session_from_row(r, &token.0)?;
                    Ok((user, token, session))
                },
            )
            .optional()?;
        let Some((user, token, mut info)) = found else {
            return Ok(None);
        };
        let token = with_scope(token)?;
        // The row was read before the token's scope was parsed.
        info.scope = token.scope;
        if t - info.last_seen_at >= LAST_SEEN_GRANULARITY || t < info.last_seen_at {
            conn.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1",
                params![info.id, t],
            )?;
            info.last_seen_at = t;
        }
        Ok(Some((user, token, info)))
    }

    /// Whether the session of row `id` still lasts and signs in `user`
    /// (tickets made in a session name it by its row).
    pub fn session_alive(&self, id: i64, user: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM sessions s JOIN tokens t ON t.id = s.token_id \
                 JOIN owners u ON u.id = t.user_id \
                 WHERE s.id = ?1 AND s.expires_at > ?2 AND u.name = ?3 AND u.kind = 'user'",
                params![id, now(), user],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Ends the session of this id (sign-out); false when there was none.
    pub fn end_session(&self, session: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE hash = ?1",
            [hash_token(session)],
        )? > 0)
    }

    /// Ends session number `session_id` of `user`; false when `user` has
    /// no such session.
    pub fn revoke_session(&self, user: &str, session_id: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE id = ?1 AND token_id IN \
             (SELECT t.id FROM tokens t JOIN owners u ON u.id = t.user_id \
              WHERE u.kind = 'user' AND u.name = ?2)",
            params![session_id, user],
        )? > 0)
    }

    /// The live sessions of `user`, oldest first.
    pub fn sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let tokens = self.tokens(user)?;
        let conn = self.conn();
        let user_id = owner_id(&conn, "user", user)?
            .ok_or_else(|| StateError::NotFound(format!("user '{user}'")))?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN tokens t ON t.id = s.token_id \
             WHERE t.user_id = ?1 AND s.expires_at > ?2 ORDER BY s.id"
        ))?;
        let mut out = Vec::new();
        let mut rows = stmt.query(params![user_id, now()])?;
        while let Some(r) = rows.next()? {
            let token_id: i64 = r.get("token_id")?;
            let Some(token) = tokens.iter().find(|t| t.id == token_id) else {
                continue;
            };
            out.push(session_from_row(r, token)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_alice() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_user("alice", None, false).unwrap();
        store.create_user("bob", None, false).unwrap();
        (dir, store)
    }

    #[test]
    fn a_session_signs_in_the_tokens_user_with_the_tokens_scope_and_stores_only_a_hash() {
        let (_dir, store) = store_with_alice();
        let (token, value) = store
            .create_token("alice", "laptop", TokenScope::Read)
            .unwrap();
        let (id, info) = store.create_session(token.id).unwrap();
        assert!(id.starts_with(SESSION_PREFIX) && id.len() > 40, "{id}");
        assert_ne!(id, value, "the session id is not the token");
        assert_eq!(info.expires_at - info.created_at, SESSION_TTL_SECS);
        let (user, used, session) = store.session_user(&id).unwrap().unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(used.id, token.id);
        assert_eq!(
            used.scope,
            TokenScope::Read,
            "a read token's session only reads"
        );
        assert_eq!(session.id, info.id);
        let stored: String = store
            .conn()
            .query_row("SELECT hash FROM sessions WHERE id = ?1", [info.id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, hash_token(&id));
        assert!(store.authenticate(&id).unwrap().is_none(), "not a token");
        assert!(
            store.session_user(&value).unwrap().is_none(),
            "not a session"
        );
        assert!(store.session_user("").unwrap().is_none());
    }

    #[test]
    fn a_session_is_refused_once_it_expires() {
        let (_dir, store) = store_with_alice();
        let (token, _) = store
            .create_token("alice", "laptop", TokenScope::Write)
            .unwrap();
        let t0 = 1_800_000_000;
        let (id, _) = store.create_session_at(token.id, t0).unwrap();
        assert!(store.session_user_at(&id, t0 + 60).unwrap().is_some());
        assert!(
            store
                .session_user_at(&id, t0 + SESSION_TTL_SECS - 1)
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .session_user_at(&id, t0 + SESSION_TTL_SECS)
                .unwrap()
                .is_none()
        );
        // A later sign-in sweeps the expired row away.
        store
            .create_session_at(token.id, t0 + SESSION_TTL_SECS + 1)
            .unwrap();
        let rows: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn sign_out_and_revoking_the_token_end_sessions() {
        let (_dir, store) = store_with_alice();
        let (token, _) = store
            .create_token("alice", "laptop", TokenScope::Write)
            .unwrap();
        let (other, _) = store
            .create_token("alice", "phone", TokenScope::Write)
            .unwrap();
        let (a, _) = store.create_session(token.id).unwrap();
        let (b, _) = store.create_session(token.id).unwrap();
        let (c, c_info) = store.create_session(other.id).unwrap();
        assert_eq!(store.sessions("alice").unwrap().len(), 3);

        assert!(store.end_session(&a).unwrap());
        assert!(store.session_user(&a).unwrap().is_none());
        assert!(!store.end_session(&a).unwrap());

        assert!(store.revoke_token("alice", token.id).unwrap());
        assert!(store.session_user(&b).unwrap().is_none());
        assert!(store.session_user(&c).unwrap().is_some());

        assert!(!store.revoke_session("bob", c_info.id).unwrap());
        assert!(store.session_user(&c).unwrap().is_some());
        assert!(store.revoke_session("alice", c_info.id).unwrap());
        assert!(store.session_user(&c).unwrap().is_none());
        assert!(store.sessions("alice").unwrap().is_empty());
        assert!(matches!(
            store.create_session(token.id),
            Err(StateError::NotFound(_))
        ));
    }
}
