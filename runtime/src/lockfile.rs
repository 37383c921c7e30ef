//! Exclusive file locks between processes (and tasks of one process):
//! whoever holds the lock on a path does a piece of work that must be done
//! once, such as making a Python environment or downloading a blob.

use std::path::PathBuf;

/// Waits (off the async threads) for the exclusive lock on `path`,
/// creating the file if needed. The lock is held until the returned file
/// is dropped, and released by the system if the process dies.
pub async fn lock(path: PathBuf) -> Result<std::fs::File, String> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        f.lock()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| format!("the lock task failed: {e}"))?
    .map_err(|e| format!("failed to lock {shown}: {e}"))
}
