//! Checking a downloaded blob against its name before it is used: the
//! SHA-256 of its bytes for large files, the git blob id (SHA-1 of
//! `blob <size>\0` and the bytes) for the others, and its size.

use std::path::Path;

use tokio::io::AsyncReadExt;

/// Errors that mean the bytes are wrong (and must be thrown away), not
/// that reading them failed.
pub const MISMATCH: &str = "corrupt download";

/// Checks the file at `path` is the blob `etag` of `size` bytes.
pub async fn check(path: &Path, etag: &str, size: u64) -> Result<(), String> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?
        .len();
    if len != size {
        return Err(format!("{MISMATCH}: {len} bytes, {size} expected"));
    }
    let mut ctx = if etag.len() == 64 {
        ring::digest::Context::new(&ring::digest::SHA256)
    } else {
        let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        c.update(format!("blob {size}\0").as_bytes());
        c
    };
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
            break;
        }
        ctx.update(&buf[..n]);
    }
    let got: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got.eq_ignore_ascii_case(etag) {
        Ok(())
    } else {
        Err(format!("{MISMATCH}: the bytes hash to {got}, not {etag}"))
    }
}
