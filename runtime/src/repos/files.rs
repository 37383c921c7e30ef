//! Single files of a commit, for the download API (`/resolve/`): what a
//! path names at a commit, small files straight from git, and large files
//! from a content-addressed store beside the repos, made from the git
//! blob on first request, so they are addressed by SHA-256 (as Hugging
//! Face addresses its LFS files) and served with ranges from disk.
//!
//! Large files are plain git blobs in the repos (git LFS is not used): a
//! push carries them like any file, under the push size cap.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::store::run;
use super::{RepoError, RepoKind, RepoStore, Result};
use crate::plan::SpaceId;

/// Files of at least this size are "large": addressed by SHA-256 and
/// served from the blob store (Hugging Face's LFS threshold).
pub const LARGE_FILE_BYTES: u64 = 10 << 20;

/// What a path names at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The git blob id (the file's ETag when it is small).
    pub oid: String,
    pub size: u64,
}

impl FileEntry {
    pub fn is_large(&self) -> bool {
        self.size >= LARGE_FILE_BYTES
    }
}

/// One entry of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeItem {
    pub path: String,
    pub oid: String,
    /// `None` for folders.
    pub size: Option<u64>,
}

/// Whether a repo path is one plain relative path.
fn plain_path(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('/')
        && !file.contains('\0')
        && file
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

impl RepoStore {
    fn blobs_root(&self) -> PathBuf {
        self.root().join(".blobs")
    }

    /// The blob `file` names at `commit` (a full commit hash), or `None`.
    pub async fn file_entry(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        commit: &str,
        file: &str,
    ) -> Result<Option<FileEntry>> {
        if !plain_path(file) {
            return Ok(None);
        }
        let path = self.existing(kind, id)?;
        let mut cmd = self.git_in(&path);
        cmd.args(["ls-tree", "-l", "-z", "--full-tree", commit, "--", file]);
        let out = run(cmd, "ls-tree").await?;
        for record in out.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let text = String::from_utf8_lossy(record);
            let Some((meta, name)) = text.split_once('\t') else {
                continue;
            };
            let mut f = meta.split_ascii_whitespace();
            let (_mode, kind, oid, size) = (f.next(), f.next(), f.next(), f.next());
            if name != file || kind != Some("blob") {
                continue;
            }
            if let (Some(oid), Some(size)) = (oid, size.and_then(|s| s.parse().ok())) {
                return Ok(Some(FileEntry {
                    oid: oid.to_owned(),
                    size,
                }));
            }
        }
        Ok(None)
    }

    /// The files and folders under `dir` (the root when `None`) at
    /// `commit`, all the way down when `recursive`. Submodules are left out.
    pub async fn list_tree(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        commit: &str,
        dir: Option<&str>,
        recursive: bool,
    ) -> Result<Vec<TreeItem>> {
        let dir = dir
            .map(|d| d.trim_end_matches('/'))
            .filter(|d| !d.is_empty());
        if let Some(d) = dir
            && !plain_path(d)
        {
            return Ok(Vec::new());
        }
        let path = self.existing(kind, id)?;
        let mut cmd = self.git_in(&path);
        cmd.args(["ls-tree", "-l", "-z", "--full-tree"]);
        if recursive {
            cmd.args(["-r", "-t"]);
        }
        cmd.arg(commit);
        let prefix = dir.map(|d| format!("{d}/"));
        if let Some(p) = &prefix {
            cmd.args(["--", p]);
        }
        let out = run(cmd, "ls-tree").await?;
        let mut items = Vec::new();
        for record in out.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let text = String::from_utf8_lossy(record);
            let Some((meta, name)) = text.split_once('\t') else {
                continue;
            };
            if prefix.as_deref().is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let mut f = meta.split_ascii_whitespace();
            let (_mode, kind, oid, size) = (f.next(), f.next(), f.next(), f.next());
            let size = match kind {
                Some("blob") => match size.and_then(|s| s.parse().ok()) {
                    Some(n) => Some(n),
                    None => continue,
                },
                Some("tree") => None,
                _ => continue,
            };
            items.push(TreeItem {
                path: name.to_owned(),
                oid: oid.unwrap_or_default().to_owned(),
                size,
            });
        }
        Ok(items)
    }

    /// The bytes of a small blob.
    pub async fn blob_bytes(&self, kind: RepoKind, id: &SpaceId, oid: &str) -> Result<Vec<u8>> {
        let path = self.existing(kind, id)?;
        let mut cmd = self.git_in(&path);
        cmd.args(["cat-file", "blob", oid]);
        Ok(run(cmd, "cat-file").await?.stdout)
    }

    /// A large blob as a file of the blob store, and its SHA-256; made
    /// from git on first use. A half-written copy is never visible: it is
    /// written aside, hashed as it goes, and renamed into place.
    pub async fn large_blob(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        oid: &str,
    ) -> Result<(PathBuf, String)> {
        if oid.len() < 40 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::BadRequest(format!("'{oid}' is not a blob id")));
        }
        let root = self.blobs_root();
        let index = root.join("oid").join(oid);
        if let Ok(sha) = std::fs::read_to_string(&index) {
            let sha = sha.trim().to_owned();
            let file = root.join("sha256").join(&sha);
            if file.is_file() {
                return Ok((file, sha));
            }
        }
        for dir in ["oid", "sha256", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).map_err(|e| io(&root.join(dir), e))?;
        }
        let repo = self.existing(kind, id)?;
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(root.join("tmp"))
            .map_err(|e| io(&root.join("tmp"), e))?;
        let mut child = self
            .git_in(&repo)
            .args(["cat-file", "blob", oid])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RepoError::Spawn {
                command: "cat-file".into(),
                source,
            })?;
        let mut stdout = child.stdout.take().ok_or_else(|| RepoError::Git {
            command: "cat-file".into(),
            message: "no output".into(),
        })?;
        let mut out = tokio::fs::File::create(tmp.path())
            .await
            .map_err(|e| io(tmp.path(), e))?;
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = stdout.read(&mut buf).await.map_err(|e| io(tmp.path(), e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])
                .await
                .map_err(|e| io(tmp.path(), e))?;
        }
        out.sync_all().await.map_err(|e| io(tmp.path(), e))?;
        let status = child.wait().await.map_err(|source| RepoError::Spawn {
            command: "cat-file".into(),
            source,
        })?;
        if !status.success() {
            return Err(RepoError::Git {
                command: "cat-file".into(),
                message: format!("exited with {status}"),
            });
        }
        let sha: String = hash
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let file = root.join("sha256").join(&sha);
        tmp.persist(&file).map_err(|e| io(&file, e.error))?;
        let index_tmp = root.join("tmp").join(format!("oid-{oid}"));
        std::fs::write(&index_tmp, &sha).map_err(|e| io(&index_tmp, e))?;
        std::fs::rename(&index_tmp, &index).map_err(|e| io(&index, e))?;
        Ok((file, sha))
    }
}

fn io(path: &Path, source: std::io::Error) -> RepoError {
    RepoError::Io {
        action: "write the blob store at",
        path: path.to_owned(),
        source,
    }
}

/// One byte range of a file of `size` bytes, from a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range asked (or one this server ignores): the whole file.
    Whole,
    /// `start..=end`.
    Part { start: u64, end: u64 },
    /// Asked, but outside the file: 416.
    Unsatisfiable,
}

/// Reads a `Range` header the way HTTP says: a single `bytes=` range
/// (`a-b`, `a-`, `-n`); anything else (several ranges, other units,
/// garbage) is answered with the whole file.
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // Suffix: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if start >= size {
                return ByteRange::Unsatisfiable;
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            if end < start {
                return ByteRange::Whole;
            }
            ByteRange::Part { start, end }
        }
        _ => ByteRange::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_http_says() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), ByteRange::Whole);
        assert_eq!(r("bytes=0-9"), ByteRange::Part { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), ByteRange::Part { start: 90, end: 99 });
        assert_eq!(r("bytes=90-500"), ByteRange::Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), ByteRange::Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-500"), ByteRange::Part { start: 0, end: 99 });
        assert_eq!(r("bytes=100-"), ByteRange::Unsatisfiable);
        assert_eq!(r("bytes=-0"), ByteRange::Unsatisfiable);
        for whole in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=",
            "bytes=-",
            "bytes=+1-2",
        ] {
            assert_eq!(r(whole), ByteRange::Whole, "{whole}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn only_plain_relative_paths_name_files() {
        assert!(plain_path("model.safetensors"));
        assert!(plain_path("sub/dir/config.json"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a/",
            "a\0b",
        ] {
            assert!(!plain_path(bad), "{bad:?}");
        }
    }
}
