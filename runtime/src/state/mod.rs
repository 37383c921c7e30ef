//! The hub's state: users, organisations, tokens, repos and their settings,
//! Space secrets and variables, node settings and analytics.
//!
//! Everything lives in one SQLite file, `<data_dir>/spaceport.db`, in WAL
//! mode with `synchronous=NORMAL`: a committed change survives the process
//! being killed (it may be lost on power failure, never corrupted). Nothing is
//! kept only in memory. The schema moves forward through [`MIGRATIONS`],
//! applied in order inside one transaction; a database written by a newer
//! build is refused.
//!
//! Secret values are encrypted with the node key in `<data_dir>/secret.key`
//! (32 random bytes, mode 0600, see [`crypt`]). Tokens are stored only as the
//! SHA-256 of their value, and browser sessions only as the SHA-256 of their
//! id.
//!
//! The data directory holds private repos, the node key and every token's
//! hash, so only its owner may read it: [`private_dir`] makes it 0700 and
//! the database files (`spaceport.db`, `-wal`, `-shm`) and the key are 0600,
//! set explicitly so the umask does not matter. An existing directory or file
//! that others could read is tightened when the store opens, with a warning:
//! the hub is its owner, and anyone else who could read it would see private
//! data.
//!
//! [`Store`] is `Send + Sync`; share it with an `Arc`. Its methods are
//! synchronous and short (one statement or one small transaction); call them
//! from async code directly or through `spawn_blocking` for batches.

mod analytics;
pub mod crypt;
mod env;
mod people;
mod repos;
mod sessions;
mod tokens;

#[cfg(test)]
mod tests;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension};

use crypt::SecretKey;

pub use analytics::DayStats;
pub use env::{SecretMeta, Variable};
pub use people::{Org, OrgRole, Owner, User};
pub use repos::{NewRepo, Repo, RepoSettings};
pub use sessions::{SESSION_PREFIX, SESSION_TTL_SECS, SessionInfo};
pub use tokens::{TOKEN_PREFIX, TokenInfo, TokenScope};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "spaceport.db";
/// The node key's file name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Longest secret or variable value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest secret or variable key.
pub const MAX_KEY_LEN: usize = 128;

/// The schema, one step per entry. Entries are never edited once released:
/// a change is a new entry at the end.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE owners (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('user', 'org')),
        fullname TEXT,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE members (
        org_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
        PRIMARY KEY (org_id, user_id)
    );
    CREATE INDEX members_user ON members(user_id);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX tokens_user ON tokens(user_id);
    CREATE TABLE repos (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('space', 'model', 'dataset')),
        owner TEXT NOT NULL COLLATE NOCASE,
        name TEXT NOT NULL COLLATE NOCASE,
        visibility TEXT NOT NULL CHECK (visibility IN ('public', 'protected', 'private')),
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',
        UNIQUE (kind, owner, name)
    );
    CREATE UNIQUE INDEX repos_host_port ON repos(json_extract(settings, '$.host_port'))
        WHERE json_extract(settings, '$.host_port') IS NOT NULL;
    CREATE TABLE secrets (
        repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        description TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repo_id, key)
    );
    CREATE TABLE variables (
        repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        description TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repo_id, key)
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE analytics (
        repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
        day INTEGER NOT NULL,
        visits INTEGER NOT NULL DEFAULT 0,
        r1xx INTEGER NOT NULL DEFAULT 0,
        r2xx INTEGER NOT NULL DEFAULT 0,
        r3xx INTEGER NOT NULL DEFAULT 0,
        r4xx INTEGER NOT NULL DEFAULT 0,
        r5xx INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        wakes INTEGER NOT NULL DEFAULT 0,
        uniques BLOB,
        PRIMARY KEY (repo_id, day)
    );
    CREATE INDEX analytics_day ON analytics(day);
    "#,
    // 2: browser sessions, each made from (and ending with) one token.
    r#"
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_token ON sessions(token_id);
    CREATE INDEX sessions_expiry ON sessions(expires_at);
    "#,
];

/// What went wrong in the state store. Messages never contain a secret value
/// or a token.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A new Space would get the host name another Space has: the proxy
    /// routes by host label, so it could serve only one of them.
    /// The message does not name the other Space: it may be private, and
    /// the caller may not know of it.
    #[error(
        "failed to create space {space}: its host name {label:?} is already used by another space; choose another name"
    )]
    HostTaken {
        /// The Space that was refused.
        space: String,
        /// The host label both would use.
        label: String,
        /// The Space that has the label.
        taken_by: String,
    },
    /// A name, key, value or argument breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The node key is unusable or a value failed to encrypt or decrypt.
    #[error("{0}")]
    Crypto(String),
    /// The database holds something this build cannot read.
    #[error("failed to read the database: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("failed to query the database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A file of the data directory could not be read or written.
    #[error("failed to {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Results of the state store.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// The hub's state store. See the [module docs](self).
pub struct Store {
    conn: Mutex<Connection>,
    key: SecretKey,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens the store in `data_dir`, creating the directory (mode 0700), the
    /// database and the node key as needed, and migrating the schema.
    ///
    /// Refuses to open when the key file has the wrong length, when the key
    /// file is missing but the database holds encrypted secrets, or when the
    /// database was written by a newer build.
    pub fn open(data_dir: &Path) -> Result<Store> {
        private_dir(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        // SQLite creates its files 0644 less the umask, and gives the -wal
        // and -shm files the database's mode: make the database 0600 first.
        private_file(&db_path)?;
        for side in ["-wal", "-shm"] {
            let mut p = db_path.clone().into_os_string();
            p.push(side);
            let p = PathBuf::from(p);
            if p.exists() {
                private_file(&p)?;
            }
        }
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Invalid(format!(
                "failed to switch {} to WAL mode (got {mode})",
                db_path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;

        let key_path = data_dir.join(KEY_FILE);
        let key = match read_key(&key_path)? {
            Some(key) => key,
            None => {
                let stored: i64 =
                    conn.query_row("SELECT count(*) FROM secrets", [], |r| r.get(0))?;
                if stored > 0 {
                    return Err(StateError::Crypto(format!(
                        "failed to open the state store: {} is missing but the database holds \
                         {stored} encrypted secrets; restore the key file",
                        key_path.display()
                    )));
                }
                create_key(&key_path)?
            }
        };
        tracing::debug!(path = %db_path.display(), "opened the state store");
        Ok(Store {
            conn: Mutex::new(conn),
            key,
            dir: data_dir.to_owned(),
        })
    }

    /// The data directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A node-wide setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a node-wide setting (keys: 1-256 bytes; values: at most 64 KiB).
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
            return Err(StateError::Invalid(format!(
                "invalid setting name '{}': it must be 1-256 characters without control characters",
                key.escape_debug()
            )));
        }
        check_len("setting value", value, MAX_VALUE_LEN)?;
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Removes a node-wide setting; false when it was not set.
    pub fn delete_setting(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM settings WHERE key = ?1", [key])?
            > 0)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at worst an open transaction,
        // which rusqlite rolls back on drop: the connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        [],
    )?;
    let current: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    let current = usize::try_from(current.unwrap_or(0))
        .map_err(|_| StateError::Corrupt("negative schema version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StateError::Invalid(format!(
            "failed to open the state store: its schema version {current} is newer than this \
             build knows ({}); run a newer spaceport",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tracing::info!(version = i + 1, "migrated the state store");
    }
    if current < MIGRATIONS.len() {
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [MIGRATIONS.len() as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Creates `dir` (and missing parents) so that only its owner may enter it,
/// or tightens it to that when it exists with looser modes. The mode is set
/// explicitly after creating, so the umask does not matter.
pub fn private_dir(dir: &Path) -> Result<()> {
    let existed = dir.is_dir();
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| StateError::Io {
        what: "create",
        path: dir.to_owned(),
        source,
    })?;
    restrict(dir, 0o700, existed)
}

/// Creates `path` as an empty file only its owner may read, or tightens it
/// to that when it exists with looser modes; never truncates.
fn private_file(path: &Path) -> Result<()> {
    let existed = path.exists();
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| StateError::Io {
        what: "create",
        path: path.to_owned(),
        source,
    })?;
    restrict(path, 0o600, existed)
}

/// Sets `mode` on what this process just created, and takes the group and
/// others bits off what existed before, saying so: a data dir copied or
/// made by hand with a loose umask must not stay readable by every user.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32, existed: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io_err = |what| {
        move |source| StateError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    };
    let current = fs::metadata(path)
        .map_err(io_err("read the mode of"))?
        .permissions()
        .mode()
        & 0o7777;
    let wanted = if existed { current & !0o077 } else { mode };
    if wanted == current {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(wanted))
        .map_err(io_err("set the mode of"))?;
    if existed {
        tracing::warn!(
            path = %path.display(),
            was = format!("{current:o}"),
            now = format!("{wanted:o}"),
            "tightened a data dir entry that other users could read"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32, _existed: bool) -> Result<()> {
    Ok(())
}

fn read_key(path: &Path) -> Result<Option<SecretKey>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                what: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    restrict(path, 0o600, true)?;
    SecretKey::from_bytes(&bytes).map(Some).map_err(|_| {
        StateError::Crypto(format!(
            "failed to open the state store: {} has {} bytes, expected {}",
            path.display(),
            bytes.len(),
            crypt::KEY_LEN
        ))
    })
}

/// Writes a new key beside its final place, then links it there, so a crash
/// never leaves a short key file and a concurrent creator's key wins intact.
fn create_key(path: &Path) -> Result<SecretKey> {
    let bytes = crypt::generate_key().map_err(|e| StateError::Crypto(e.to_string()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let io_err = |what, p: &Path| {
        let p = p.to_owned();
        move |source| StateError::Io {
            what,
            path: p,
            source,
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(&bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    drop(file);
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // Make the new name durable too.
            if let Some(Ok(d)) = path.parent().map(fs::File::open) {
                let _ = d.sync_all();
            }
            tracing::info!(path = %path.display(), "created the node's secret key");
            SecretKey::from_bytes(&bytes).map_err(|e| StateError::Crypto(e.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(path)?
            .ok_or_else(|| StateError::Crypto("failed to read the secret key file".into())),
        Err(source) => Err(StateError::Io {
            what: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Now, in unix seconds.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether the error is a UNIQUE or PRIMARY KEY violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(StateError::Invalid(format!(
            "invalid {what}: it has {} bytes, at most {max} are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// Converts a stored count back (counts are never negative).
fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts a count for storage (saturating far beyond any real count).
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
