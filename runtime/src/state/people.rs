//! Users, organisations and membership. Users and organisations share one
//! namespace, case-insensitively, as on the Hugging Face Hub.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Result, StateError, Store, is_unique_violation, now};

/// Names that would shadow the hub's own URL paths (models live at
/// `/<owner>/<name>`), compared case-insensitively.
const RESERVED: &[&str] = &[
    "api",
    "apps",
    "assets",
    "datasets",
    "docs",
    "healthz",
    "login",
    "logout",
    "metrics",
    "models",
    "new",
    "organizations",
    "settings",
    "spaces",
    "static",
];

/// A person who can sign in and hold tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name, as spelled when created.
    pub name: String,
    /// The display name.
    pub fullname: Option<String>,
    /// A site admin may read and write everything.
    pub admin: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// An organisation: owns repos, has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// The name, as spelled when created.
    pub name: String,
    /// The display name.
    pub fullname: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Whoever a name belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(User),
    Org(Org),
}

impl Owner {
    /// The owner's canonical name.
    pub fn name(&self) -> &str {
        match self {
            Owner::User(u) => &u.name,
            Owner::Org(o) => &o.name,
        }
    }
}

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    /// May read the organisation's private repos.
    Read,
    /// May also write its repos and create new ones.
    Write,
    /// May also manage members.
    Admin,
}

impl OrgRole {
    /// `"read"`, `"write"` or `"admin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Read => "read",
            OrgRole::Write => "write",
            OrgRole::Admin => "admin",
        }
    }

    /// Whether the role allows writing.
    pub fn can_write(self) -> bool {
        self >= OrgRole::Write
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgRole {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(OrgRole::Read),
            "write" => Ok(OrgRole::Write),
            "admin" => Ok(OrgRole::Admin),
            other => Err(StateError::Invalid(format!(
                "invalid role '{}' (expected read, write or admin)",
                other.escape_debug()
            ))),
        }
    }
}

/// Checks a user or organisation name: 1-96 characters of
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, not ending with `.git`, not reserved.
pub fn validate_owner_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(StateError::Invalid(format!(
            "invalid name '{}': {why}",
            name.escape_debug()
        )))
    };
    if name.is_empty() || name.len() > 96 {
        return bad("it must be 1-96 characters long");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if name.to_ascii_lowercase().ends_with(".git") {
        return bad("it must not end with '.git'");
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return bad("the name is reserved");
    }
    Ok(())
}

fn validate_fullname(fullname: Option<&str>) -> Result<()> {
    match fullname {
        Some(f) if f.chars().count() > 256 || f.chars().any(char::is_control) => {
            Err(StateError::Invalid(
                "invalid full name: at most 256 characters, no control characters".into(),
            ))
        }
        _ => Ok(()),
    }
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get("name")?,
        fullname: r.get("fullname")?,
        admin: r.get("admin")?,
        created_at: r.get("created_at")?,
    })
}

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        name: r.get("name")?,
        fullname: r.get("fullname")?,
        created_at: r.get("created_at")?,
    })
}

fn taken(name: &str) -> StateError {
    StateError::AlreadyExists(format!("user or organization '{name}'"))
}

impl Store {
    /// Creates a user. Fails with `AlreadyExists` when a user or an
    /// organisation has the name (in any case).
    pub fn create_user(&self, name: &str, fullname: Option<&str>, admin: bool) -> Result<User> {
        validate_owner_name(name)?;
        validate_fullname(fullname)?;
        let created_at = now();
        self.conn()
            .execute(
                "INSERT INTO owners (name, kind, fullname, admin, created_at) \
                 VALUES (?1, 'user', ?2, ?3, ?4)",
                params![name, fullname, admin, created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    taken(name)
                } else {
                    e.into()
                }
            })?;
        Ok(User {
            name: name.to_owned(),
            fullname: fullname.map(str::to_owned),
            admin,
            created_at,
        })
    }

    /// A user by name (case-insensitive).
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM owners WHERE kind = 'user' AND name = ?1",
                [name],
                user_from_row,
            )
            .optional()?)
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<User>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM owners WHERE kind = 'user' ORDER BY name")?;
        let users = stmt
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    /// Makes a user a site admin or takes that away.
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE owners SET admin = ?2 WHERE kind = 'user' AND name = ?1",
            params![name, admin],
        )?;
        if n == 0 {
            return Err(StateError::NotFound(format!("user '{name}'")));
        }
        Ok(())
    }

    /// Creates an organisation. Fails with `AlreadyExists` when a user or an
    /// organisation has the name (in any case).
    pub fn create_org(&self, name: &str, fullname: Option<&str>) -> Result<Org> {
        validate_owner_name(name)?;
        validate_fullname(fullname)?;
        let created_at = now();
        self.conn()
            .execute(
                "INSERT INTO owners (name, kind, fullname, created_at) VALUES (?1, 'org', ?2, ?3)",
                params![name, fullname, created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    taken(name)
                } else {
                    e.into()
                }
            })?;
        Ok(Org {
            name: name.to_owned(),
            fullname: fullname.map(str::to_owned),
            created_at,
        })
    }

    /// All organisations, by name.
    pub fn orgs(&self) -> Result<Vec<Org>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM owners WHERE kind = 'org' ORDER BY name")?;
        let orgs = stmt
            .query_map([], org_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(orgs)
    }

    /// Adds `user` to `org` with `role`, or changes the role of a member.
    pub fn add_member(&self, org: &str, user: &str, role: OrgRole) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let org_id = owner_id(&tx, "org", org)?
            .ok_or_else(|| StateError::NotFound(format!("organization '{org}'")))?;
        let user_id = owner_id(&tx, "user", user)?
            .ok_or_else(|| StateError::NotFound(format!("user '{user}'")))?;
        tx.execute(
            "INSERT INTO members (org_id, user_id, role) VALUES (?1, ?2, ?3) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
            params![org_id, user_id, role.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes `user` from `org`; false when they were not a member.
    pub fn remove_member(&self, org: &str, user: &str) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM members WHERE \
             org_id = (SELECT id FROM owners WHERE kind = 'org' AND name = ?1) AND \
             user_id = (SELECT id FROM owners WHERE kind = 'user' AND name = ?2)",
            [org, user],
        )?;
        Ok(n > 0)
    }

    /// The organisations `user` belongs to, with the role in each, by name.
    pub fn orgs_of(&self, user: &str) -> Result<Vec<(Org, OrgRole)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT o.name, o.fullname, o.created_at, m.role FROM members m \
             JOIN owners o ON o.id = m.org_id \
             JOIN owners u ON u.id = m.user_id \
             WHERE u.kind = 'user' AND u.name = ?1 ORDER BY o.name",
        )?;
        let rows = stmt
            .query_map([user], |r| {
                Ok((org_from_row(r)?, r.get::<_, String>("role")?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(org, role)| Ok((org, role.parse()?)))
            .collect()
    }

    /// The members of `org` with their roles, by name.
    pub fn members(&self, org: &str) -> Result<Vec<(User, OrgRole)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.*, m.role FROM members m \
             JOIN owners o ON o.id = m.org_id \
             JOIN owners u ON u.id = m.user_id \
             WHERE o.kind = 'org' AND o.name = ?1 ORDER BY u.name",
        )?;
        let rows = stmt
            .query_map([org], |r| {
                Ok((user_from_row(r)?, r.get::<_, String>("role")?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(user, role)| Ok((user, role.parse()?)))
            .collect()
    }

    /// Whoever owns the name (case-insensitive): a user or an organisation.
    pub fn owner(&self, name: &str) -> Result<Option<Owner>> {
        let conn = self.conn();
        let row = conn
            .query_row("SELECT * FROM owners WHERE name = ?1", [name], |r| {
                let kind: String = r.get("kind")?;
                Ok(if kind == "org" {
                    Owner::Org(org_from_row(r)?)
                } else {
                    Owner::User(user_from_row(r)?)
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Whether `user` may write repos of `owner`: the user itself, a member
    /// of the organisation `owner` with the write or admin role, or a site
    /// admin.
    pub fn can_write(&self, user: &User, owner: &str) -> Result<bool> {
        Ok(self.access(user, owner)?.is_some_and(OrgRole::can_write))
    }

    /// Whether `user` may read private repos of `owner`: as
    /// [`Store::can_write`], and also read members. (Public repos are
    /// readable by all; that is the caller's rule.)
    pub fn can_read(&self, user: &User, owner: &str) -> Result<bool> {
        Ok(self.access(user, owner)?.is_some())
    }

    /// The role `user` effectively has over `owner`'s repos, if any.
    fn access(&self, user: &User, owner: &str) -> Result<Option<OrgRole>> {
        if user.admin || user.name.eq_ignore_ascii_case(owner) {
            return Ok(Some(OrgRole::Admin));
        }
        let role: Option<String> = self
            .conn()
            .query_row(
                "SELECT m.role FROM members m \
                 JOIN owners o ON o.id = m.org_id \
                 JOIN owners u ON u.id = m.user_id \
                 WHERE o.kind = 'org' AND o.name = ?1 AND u.kind = 'user' AND u.name = ?2",
                [owner, &user.name],
                |r| r.get(0),
            )
            .optional()?;
        role.map(|r| r.parse()).transpose()
    }
}

/// The row id of an owner of `kind` named `name`.
pub(super) fn owner_id(conn: &rusqlite::Connection, kind: &str, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM owners WHERE kind = ?1 AND name = ?2",
            [kind, name],
            |r| r.get(0),
        )
        .optional()?)
}
