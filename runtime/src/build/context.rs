//! The build context: a Space folder as a tar stream, produced on a
//! blocking thread chunk by chunk, so a large repo is never held in memory
//! whole. Paths in `excludes` (and everything under them) are left out,
//! symbolic links are sent as links (never followed), and entries carry
//! fixed owners and times so an unchanged file always gives the same
//! bytes and the engine's layer cache holds. It reads; it never writes.

use crate::engine::ContextStream;
use bytes::Bytes;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Where spaceport puts the planned Dockerfile in the context; a repo file
/// of this name is not sent.
pub const DOCKERFILE_PATH: &str = ".spaceport.Dockerfile";

const CHUNK: usize = 64 * 1024;

struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the build stopped reading"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// True when `path` ('/'-separated, relative) is an exclude or lies under one.
pub fn is_excluded(path: &str, excludes: &[String]) -> bool {
    path == DOCKERFILE_PATH
        || excludes.iter().any(|e| {
            let e = e.trim_matches('/');
            !e.is_empty() && (path == e || path.strip_prefix(e).is_some_and(|r| r.starts_with('/')))
        })
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn walk(
    dir: &Path,
    rel: &str,
    excludes: &[String],
    out: &mut tar::Builder<ChannelWriter>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if is_excluded(&path, excludes) {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o7777
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let mut h = header(0, 0o777, tar::EntryType::Symlink);
            out.append_link(&mut h, &path, &target)?;
        } else if meta.is_dir() {
            let mut h = header(0, mode, tar::EntryType::Directory);
            out.append_data(&mut h, format!("{path}/"), io::empty())?;
            walk(&entry.path(), &path, excludes, out)?;
        } else if meta.is_file() {
            let file = std::fs::File::open(entry.path())?;
            let mut h = header(meta.len(), mode, tar::EntryType::Regular);
            out.append_data(&mut h, &path, file)?;
        }
    }
    Ok(())
}

/// Streams `root` as a tar, with `dockerfile` added at [`DOCKERFILE_PATH`].
pub fn stream_context(root: PathBuf, excludes: Vec<String>, dockerfile: String) -> ContextStream {
    let (tx, rx) = mpsc::channel(8);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let mut out = tar::Builder::new(writer);
        out.follow_symlinks(false);
        let result = (|| {
            let mut h = header(dockerfile.len() as u64, 0o644, tar::EntryType::Regular);
            out.append_data(&mut h, DOCKERFILE_PATH, dockerfile.as_bytes())?;
            walk(&root, "", &excludes, &mut out)?;
            out.into_inner()?.flush()
        })();
        if let Err(e) = result {
            let _ = errors.blocking_send(Err(e));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_cover_their_subtrees_only() {
        let ex = vec![".git".to_owned()];
        assert!(is_excluded(".git", &ex));
        assert!(is_excluded(".git/objects/ab", &ex));
        assert!(!is_excluded(".gitignore", &ex));
        assert!(!is_excluded("src/.git", &ex));
        assert!(is_excluded(DOCKERFILE_PATH, &[]));
    }

    #[tokio::test]
    async fn the_context_holds_the_dockerfile_and_the_files_but_not_the_excludes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "print(1)\n").unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref\n").unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/mod.py"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let mut rx = stream_context(
            dir.path().to_owned(),
            vec![".git".into()],
            "FROM scratch\n".into(),
        );
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let kind = entry.header().entry_type();
            seen.push((entry.path().unwrap().to_string_lossy().into_owned(), kind));
        }
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [DOCKERFILE_PATH, "app.py", "link", "pkg/", "pkg/mod.py"]
        );
        assert_eq!(seen[2].1, tar::EntryType::Symlink, "links are not followed");
    }

    #[tokio::test]
    async fn the_context_never_archives_what_a_link_leads_to_outside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.key"), "the-secret-key-bytes").unwrap();
        let root = dir.path().join("space");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("app.py"), "print(1)\n").unwrap();
        std::os::unix::fs::symlink(".", root.join("r")).unwrap();
        std::os::unix::fs::symlink("r/r/../secret.key", root.join("key")).unwrap();
        std::os::unix::fs::symlink("..", root.join("up")).unwrap();
        let mut rx = stream_context(root, Vec::new(), "FROM scratch\n".into());
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert!(
            !bytes
                .windows(b"the-secret-key-bytes".len())
                .any(|w| w == b"the-secret-key-bytes"),
            "the secret was archived"
        );
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            seen.push((name, entry.header().entry_type()));
        }
        for link in ["key", "r", "up"] {
            assert!(
                seen.contains(&(link.to_owned(), tar::EntryType::Symlink)),
                "{link} is sent as a link: {seen:?}"
            );
        }
        assert!(
            !seen.iter().any(|(n, _)| n.starts_with("up/")),
            "a link to a folder is not walked: {seen:?}"
        );
    }
}
