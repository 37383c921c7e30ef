//! A Space's secrets and variables: the environment it builds and runs
//! with. Secrets are encrypted at rest and leave the store only through
//! [`Store::secret_values`]; variables are plain. A key is either a secret or
//! a variable of a Space, not both.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::crypt::secret_aad;
use super::repos::require;
use super::{
    MAX_DESCRIPTION_LEN, MAX_KEY_LEN, MAX_VALUE_LEN, Result, StateError, Store, check_len, now,
};
use crate::plan::{SpaceId, is_env_name};
use crate::repos::RepoKind;

/// A secret as listed: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    pub key: String,
    pub description: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

#[derive(Clone, Copy)]
enum Table {
    Secrets,
    Variables,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Secrets => "secrets",
            Table::Variables => "variables",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Table::Secrets => "secret",
            Table::Variables => "variable",
        }
    }

    fn other(self) -> Table {
        match self {
            Table::Secrets => Table::Variables,
            Table::Variables => Table::Secrets,
        }
    }
}

/// Checks a secret or variable key: an environment variable name of at most
/// [`MAX_KEY_LEN`] characters.
pub fn validate_env_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_LEN || !is_env_name(key) {
        return Err(StateError::Invalid(format!(
            "invalid key '{}': it must be an environment variable name \
             ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_KEY_LEN} characters)",
            key.escape_debug()
        )));
    }
    Ok(())
}

fn validate_entry(key: &str, value: &str, description: Option<&str>) -> Result<()> {
    validate_env_key(key)?;
    check_len("value", value, MAX_VALUE_LEN)?;
    if let Some(d) = description {
        check_len("description", d, MAX_DESCRIPTION_LEN)?;
    }
    Ok(())
}

/// Inserts or replaces `key` in `table`; a None description keeps the
/// previous one.
fn upsert(
    conn: &Connection,
    table: Table,
    space: &SpaceId,
    repo_id: i64,
    key: &str,
    value: &dyn rusqlite::ToSql,
    description: Option<&str>,
) -> Result<()> {
    let clash: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT 1 FROM {} WHERE repo_id = ?1 AND key = ?2",
                table.other().name()
            ),
            params![repo_id, key],
            |r| r.get(0),
        )
        .optional()?;
    if clash.is_some() {
        return Err(StateError::AlreadyExists(format!(
            "{} '{key}' of {space} (a {} cannot have the same name)",
            table.other().what(),
            table.what()
        )));
    }
    conn.execute(
        &format!(
            "INSERT INTO {t} (repo_id, key, value, description, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (repo_id, key) DO UPDATE SET value = excluded.value, \
             description = coalesce(excluded.description, {t}.description), \
             updated_at = excluded.updated_at",
            t = table.name()
        ),
        params![repo_id, key, value, description, now()],
    )?;
    Ok(())
}

impl Store {
    fn delete_env(&self, table: Table, space: &SpaceId, key: &str) -> Result<bool> {
        let conn = self.conn();
        let (repo_id, _) = require(&conn, RepoKind::Space, space)?;
        let n = conn.execute(
            &format!(
                "DELETE FROM {} WHERE repo_id = ?1 AND key = ?2",
                table.name()
            ),
            params![repo_id, key],
        )?;
        Ok(n > 0)
    }

    /// Sets a secret of a Space (encrypted with the node key). A None
    /// description keeps the one it had.
    pub fn set_secret(
        &self,
        space: &SpaceId,
        key: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<()> {
        validate_entry(key, value, description)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (repo_id, canonical) = require(&tx, RepoKind::Space, space)?;
        let sealed = self
            .key
            .seal(&secret_aad(&canonical.to_string(), key), value.as_bytes())
            .map_err(|e| StateError::Crypto(format!("{e} (secret '{key}' of {canonical})")))?;
        upsert(
            &tx,
            Table::Secrets,
            &canonical,
            repo_id,
            key,
            &sealed,
            description,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a secret; false when the Space has no such secret.
    pub fn delete_secret(&self, space: &SpaceId, key: &str) -> Result<bool> {
        self.delete_env(Table::Secrets, space, key)
    }

    /// The secrets of a Space, without values, by key.
    pub fn secrets(&self, space: &SpaceId) -> Result<Vec<SecretMeta>> {
        let conn = self.conn();
        let (repo_id, _) = require(&conn, RepoKind::Space, space)?;
        let mut stmt = conn.prepare(
            "SELECT key, description, updated_at FROM secrets WHERE repo_id = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map([repo_id], |r| {
                Ok(SecretMeta {
                    key: r.get(0)?,
                    description: r.get(1)?,
                    updated_at: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The decrypted secrets of a Space, for building and running it. Never
    /// log or return these to a client.
    pub fn secret_values(&self, space: &SpaceId) -> Result<BTreeMap<String, String>> {
        let conn = self.conn();
        let (repo_id, canonical) = require(&conn, RepoKind::Space, space)?;
        let mut stmt = conn.prepare("SELECT key, value FROM secrets WHERE repo_id = ?1")?;
        let rows = stmt
            .query_map([repo_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let id = canonical.to_string();
        rows.into_iter()
            .map(|(key, sealed)| {
                let plain = self
                    .key
                    .open(&secret_aad(&id, &key), &sealed)
                    .map_err(|e| StateError::Crypto(format!("{e} (secret '{key}' of {id})")))?;
                let value = String::from_utf8(plain).map_err(|_| {
                    StateError::Corrupt(format!("secret '{key}' of {id} is not UTF-8"))
                })?;
                Ok((key, value))
            })
            .collect()
    }

    /// Sets a variable of a Space. A None description keeps the one it had.
    pub fn set_variable(
        &self,
        space: &SpaceId,
        key: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<()> {
        validate_entry(key, value, description)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (repo_id, canonical) = require(&tx, RepoKind::Space, space)?;
        upsert(
            &tx,
            Table::Variables,
            &canonical,
            repo_id,
            key,
            &value,
            description,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a variable; false when the Space has no such variable.
    pub fn delete_variable(&self, space: &SpaceId, key: &str) -> Result<bool> {
        self.delete_env(Table::Variables, space, key)
    }

    /// The variables of a Space, by key.
    pub fn variables(&self, space: &SpaceId) -> Result<Vec<Variable>> {
        let conn = self.conn();
        let (repo_id, _) = require(&conn, RepoKind::Space, space)?;
        let mut stmt = conn.prepare(
            "SELECT key, value, description, updated_at FROM variables \
             WHERE repo_id = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map([repo_id], |r| {
                Ok(Variable {
                    key: r.get(0)?,
                    value: r.get(1)?,
                    description: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
