//! Checking a downloaded blob against its name before it is used: the
//! SHA-256 of its bytes for large files, the git blob id (SHA-1 of
//! `blob <size>\0` and the bytes) for the others, and its size.

use std::path::Path;

use tokio::io::AsyncReadExt;

/// Errors that mean the bytes are wrong (and must be thrown away), not
/// that reading them failed.
pub const MISMATCH: &str = "corrupt download";

/// The digest a blob named `etag` must have, fed as its bytes arrive.
pub struct Hasher {
    ctx: ring::digest::Context,
    etag: String,
    size: u64,
    seen: u64,
}

impl Hasher {
    pub fn new(etag: &str, size: u64) -> Self {
        let ctx = if etag.len() == 64 {
            ring::digest::Context::new(&ring::digest::SHA256)
        } else {
            let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
            c.update(format!("blob {size}\0").as_bytes());
            c
        };
        Hasher {
            ctx,
            etag: etag.to_ascii_lowercase(),
            size,
            seen: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        self.ctx.update(bytes);
    }

    /// Feeds the bytes of a file (a download's earlier part).
    pub async fn update_from(&mut self, path: &Path) -> Result<(), String> {
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("failed to open {}: {e}", path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
        }
    }

    /// Whether the bytes fed are the blob.
    pub fn finish(self) -> Result<(), String> {
        if self.seen != self.size {
            return Err(format!(
                "{MISMATCH}: {} bytes, {} expected",
                self.seen, self.size
            ));
        }
        let got: String = self
            .ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got == self.etag {
            Ok(())
        } else {
            Err(format!(
                "{MISMATCH}: the bytes hash to {got}, not {}",
                self.etag
            ))
        }
    }
}

/// Checks the file at `path` is the blob `etag` of `size` bytes.
pub async fn check(path: &Path, etag: &str, size: u64) -> Result<(), String> {
    let mut h = Hasher::new(etag, size);
    h.update_from(path).await?;
    h.finish()
}
