//! Repos (Spaces, models, datasets) and their settings. Ids are unique per
//! kind, case-insensitively, and keep the spelling they were created with.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use spaceport_proxy::Visibility;

use super::{Result, StateError, Store, is_unique_violation, now};
use crate::plan::SpaceId;
use crate::repos::RepoKind;

/// What the hub remembers of a repo besides its git contents. Stored as
/// JSON: fields missing from old rows take their defaults, and fields this
/// build does not know are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepoSettings {
    /// The SDK (`gradio`, `docker`, ...), as last read from the README.
    pub sdk: Option<String>,
    /// The requested hardware flavor.
    pub hardware: Option<String>,
    /// Idle seconds before sleeping; -1 never sleeps; None takes the node's
    /// default.
    pub sleep_time: Option<i64>,
    /// Paused by its owner: not run until unpaused.
    pub paused: bool,
    /// The last commit pushed to main.
    pub commit: Option<String>,
    /// The loopback port the Space's container publishes on, kept across
    /// restarts; unique among repos.
    pub host_port: Option<u16>,
    /// Runs in dev mode.
    pub dev_mode: bool,
    /// Hub repos mounted through the API.
    pub volumes: Vec<crate::plan::ApiVolume>,
}

impl RepoSettings {
    fn validate(&self) -> Result<()> {
        if self.sleep_time.is_some_and(|s| s < -1) {
            return Err(StateError::Invalid(
                "invalid sleep time: it must be -1 (never) or a number of seconds".into(),
            ));
        }
        if self.host_port == Some(0) {
            return Err(StateError::Invalid(
                "invalid host port: it must be 1-65535".into(),
            ));
        }
        Ok(())
    }
}

/// A repo as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// Space, model or dataset.
    pub kind: RepoKind,
    /// `owner/name`, spelled as when created.
    pub id: SpaceId,
    /// Whether the repo is hidden from others (`visibility` is not public).
    pub private: bool,
    /// Who may see the repo and use the app.
    pub visibility: Visibility,
    /// Unix seconds.
    pub created_at: i64,
    /// The user who created it.
    pub created_by: String,
    /// The rest.
    pub settings: RepoSettings,
}

/// A repo to create.
#[derive(Debug, Clone)]
pub struct NewRepo {
    pub kind: RepoKind,
    pub id: SpaceId,
    pub visibility: Visibility,
    pub created_by: String,
    pub settings: RepoSettings,
}

impl NewRepo {
    /// A public repo with default settings.
    pub fn new(kind: RepoKind, id: SpaceId, created_by: &str) -> Self {
        Self {
            kind,
            id,
            visibility: Visibility::Public,
            created_by: created_by.to_owned(),
            settings: RepoSettings::default(),
        }
    }

    /// The API's `private` flag: true makes the repo [`Visibility::Private`].
    pub fn private(mut self, private: bool) -> Self {
        self.visibility = if private {
            Visibility::Private
        } else {
            Visibility::Public
        };
        self
    }
}

fn visibility_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Protected => "protected",
        Visibility::Private => "private",
    }
}

fn parse_visibility(s: &str) -> Result<Visibility> {
    match s {
        "public" => Ok(Visibility::Public),
        "protected" => Ok(Visibility::Protected),
        "private" => Ok(Visibility::Private),
        other => Err(StateError::Corrupt(format!("unknown visibility '{other}'"))),
    }
}

/// The raw columns of a repo row.
struct RepoRow {
    id: i64,
    kind: String,
    owner: String,
    name: String,
    visibility: String,
    created_at: i64,
    created_by: String,
    settings: String,
}

const REPO_COLUMNS: &str = "id, kind, owner, name, visibility, created_at, created_by, settings";

fn repo_row(r: &Row<'_>) -> rusqlite::Result<RepoRow> {
    Ok(RepoRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        owner: r.get(2)?,
        name: r.get(3)?,
        visibility: r.get(4)?,
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        settings: r.get(7)?,
    })
}

impl RepoRow {
    fn into_repo(self) -> Result<Repo> {
        let kind = self.kind.parse().map_err(StateError::Corrupt)?;
        let id = SpaceId::parse(&format!("{}/{}", self.owner, self.name)).map_err(|e| {
            StateError::Corrupt(format!("invalid repo id {}/{}: {e}", self.owner, self.name))
        })?;
        let visibility = parse_visibility(&self.visibility)?;
        let settings = serde_json::from_str(&self.settings)
            .map_err(|e| StateError::Corrupt(format!("invalid settings of {id}: {e}")))?;
        Ok(Repo {
            kind,
            id,
            private: visibility != Visibility::Public,
            visibility,
            created_at: self.created_at,
            created_by: self.created_by,
            settings,
        })
    }
}

/// The row of repo `kind` `id` (case-insensitive), if any.
fn find(conn: &Connection, kind: RepoKind, id: &SpaceId) -> Result<Option<RepoRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {REPO_COLUMNS} FROM repos WHERE kind = ?1 AND owner = ?2 AND name = ?3"
            ),
            params![kind.as_str(), id.owner(), id.name()],
            repo_row,
        )
        .optional()?)
}

/// The row id and canonical id of repo `kind` `id`, or NotFound.
pub(super) fn require(conn: &Connection, kind: RepoKind, id: &SpaceId) -> Result<(i64, SpaceId)> {
    let row =
        find(conn, kind, id)?.ok_or_else(|| StateError::NotFound(format!("{kind} '{id}'")))?;
    let canonical = SpaceId::parse(&format!("{}/{}", row.owner, row.name))
        .map_err(|e| StateError::Corrupt(format!("invalid repo id: {e}")))?;
    Ok((row.id, canonical))
}

/// Fails when another repo than `except` already uses `port`.
fn check_port_free(conn: &Connection, port: Option<u16>, except: Option<i64>) -> Result<()> {
    let Some(port) = port else { return Ok(()) };
    let holder: Option<(String, String)> = conn
        .query_row(
            "SELECT owner, name FROM repos \
             WHERE json_extract(settings, '$.host_port') = ?1 AND id IS NOT ?2",
            params![port, except],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match holder {
        Some((owner, name)) => Err(StateError::AlreadyExists(format!(
            "host port {port} (used by {owner}/{name})"
        ))),
        None => Ok(()),
    }
}

/// Fails when another Space than `id` (in any case) already has the host
/// label `id` would get. The label is computed by the proxy's own function,
/// so whatever the router would take for one host is refused here: case,
/// `_` and `.` (all folded by the label) and the `-` between owner and name
/// (`alice-my/app` and `alice/my-app`).
fn check_host_free(conn: &Connection, id: &SpaceId) -> Result<()> {
    let label = id.host_label();
    let mut stmt = conn.prepare("SELECT owner, name FROM repos WHERE kind = ?1")?;
    let rows = stmt.query_map([RepoKind::Space.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (owner, name) = row?;
        let same_id =
            owner.eq_ignore_ascii_case(id.owner()) && name.eq_ignore_ascii_case(id.name());
        // Rows this build cannot parse never reach the router either.
        let Ok(other) = spaceport_proxy::route::SpaceId::new(&owner, &name) else {
            continue;
        };
        if !same_id && other.host_label() == label {
            return Err(StateError::HostTaken {
                space: id.to_string(),
                label,
                taken_by: other.to_string(),
            });
        }
    }
    Ok(())
}

impl Store {
    /// Creates a repo. Fails with `AlreadyExists` when a repo of the same
    /// kind has the id in any case, or when its host port is taken, and with
    /// `HostTaken` when another Space has the host label a new Space would
    /// get.
    pub fn create_repo(&self, new: NewRepo) -> Result<Repo> {
        new.settings.validate()?;
        let settings =
            serde_json::to_string(&new.settings).map_err(|e| StateError::Invalid(e.to_string()))?;
        let created_at = now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_port_free(&tx, new.settings.host_port, None)?;
        if new.kind == RepoKind::Space {
            check_host_free(&tx, &new.id)?;
        }
        tx.execute(
            "INSERT INTO repos (kind, owner, name, visibility, created_at, created_by, settings) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                new.kind.as_str(),
                new.id.owner(),
                new.id.name(),
                visibility_str(new.visibility),
                created_at,
                new.created_by,
                settings
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                StateError::AlreadyExists(format!("{} '{}'", new.kind, new.id))
            } else {
                e.into()
            }
        })?;
        tx.commit()?;
        Ok(Repo {
            kind: new.kind,
            id: new.id,
            private: new.visibility != Visibility::Public,
            visibility: new.visibility,
            created_at,
            created_by: new.created_by,
            settings: new.settings,
        })
    }

    /// A repo by kind and id (case-insensitive); the id comes back in its
    /// canonical spelling.
    pub fn repo(&self, kind: RepoKind, id: &SpaceId) -> Result<Option<Repo>> {
        find(&self.conn(), kind, id)?
            .map(RepoRow::into_repo)
            .transpose()
    }

    /// All repos of a kind, by id.
    pub fn repos(&self, kind: RepoKind) -> Result<Vec<Repo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE kind = ?1 ORDER BY owner, name"
        ))?;
        let rows = stmt
            .query_map([kind.as_str()], repo_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(RepoRow::into_repo).collect()
    }

    /// Deletes a repo with its secrets, variables and analytics; false when
    /// there was none.
    pub fn delete_repo(&self, kind: RepoKind, id: &SpaceId) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM repos WHERE kind = ?1 AND owner = ?2 AND name = ?3",
            params![kind.as_str(), id.owner(), id.name()],
        )?;
        Ok(n > 0)
    }

    /// Changes a repo's settings with `f`, atomically, and returns the repo.
    pub fn update_repo(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        f: impl FnOnce(&mut RepoSettings),
    ) -> Result<Repo> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row =
            find(&tx, kind, id)?.ok_or_else(|| StateError::NotFound(format!("{kind} '{id}'")))?;
        let row_id = row.id;
        let mut repo = row.into_repo()?;
        f(&mut repo.settings);
        repo.settings.validate()?;
        check_port_free(&tx, repo.settings.host_port, Some(row_id))?;
        let settings = serde_json::to_string(&repo.settings)
            .map_err(|e| StateError::Invalid(e.to_string()))?;
        tx.execute(
            "UPDATE repos SET settings = ?2 WHERE id = ?1",
            params![row_id, settings],
        )?;
        tx.commit()?;
        Ok(repo)
    }

    /// Changes who may see a repo, and returns it.
    pub fn set_visibility(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        visibility: Visibility,
    ) -> Result<Repo> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (row_id, _) = require(&tx, kind, id)?;
        tx.execute(
            "UPDATE repos SET visibility = ?2 WHERE id = ?1",
            params![row_id, visibility_str(visibility)],
        )?;
        let repo = find(&tx, kind, id)?
            .ok_or_else(|| StateError::NotFound(format!("{kind} '{id}'")))?
            .into_repo()?;
        tx.commit()?;
        Ok(repo)
    }

    /// The host ports in use by any repo, ascending.
    pub fn host_ports(&self) -> Result<Vec<u16>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT json_extract(settings, '$.host_port') AS p FROM repos \
             WHERE json_extract(settings, '$.host_port') IS NOT NULL ORDER BY p",
        )?;
        let ports = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ports)
    }
}
