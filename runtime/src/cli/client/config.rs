//! The stored login: the hub's URL and a token, in
//! `$XDG_CONFIG_HOME/spaceport/credentials.json` (or
//! `~/.config/spaceport/credentials.json`), readable by the user alone
//! (file 0600, folder 0700).

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What `spaceport login` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub token: String,
}

/// The folder holding spaceport's client settings, when a home is known.
pub fn dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("spaceport"))
}

/// The credentials file.
pub fn path() -> Option<PathBuf> {
    dir().map(|d| d.join("credentials.json"))
}

/// The stored login, if any.
pub fn load() -> Result<Option<Stored>, String> {
    let Some(path) = path() else {
        return Ok(None);
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "{} is not valid ({e}); run `spaceport logout` and log in again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Stores a login (replacing any), readable by the user alone.
pub fn save(stored: &Stored) -> Result<PathBuf, String> {
    let dir = dir().ok_or_else(|| {
        "neither XDG_CONFIG_HOME nor HOME is set; use SPACEPORT_URL and SPACEPORT_TOKEN instead"
            .to_string()
    })?;
    make_private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("credentials.json");
    let tmp = dir.join(".credentials.json.tmp");
    let text = serde_json::to_string_pretty(stored).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Removes the stored login; whether there was one.
pub fn remove() -> Result<Option<PathBuf>, String> {
    let Some(path) = path() else {
        return Ok(None);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn make_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn make_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}
