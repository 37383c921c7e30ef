//! Resolving a path inside a tree the way the kernel would, but never
//! leaving the tree.
//!
//! A link's text alone cannot tell where it leads: `r -> .` is harmless on
//! its own, yet `r/r/../..` through it climbs above the folder holding it.
//! So every component is looked up on disk, links met on the way are
//! followed within the tree (their targets spliced in front of what is left
//! to resolve), `..` may never climb above the root, absolute targets are
//! refused, and a hop limit stops loops. The result is a path of real
//! folders and a final entry that holds no link, which the tree's readers
//! (the export check, the static file server) then open.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Most links followed while resolving one path, as Linux allows.
pub const MAX_LINK_HOPS: u32 = 40;

/// Why a path could not be resolved inside its tree.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("failed to resolve '{path}': it leads outside the tree (through '{via}')")]
    Escapes { path: PathBuf, via: PathBuf },

    #[error("failed to resolve '{path}': link '{link}' points to an absolute path ({target})")]
    Absolute {
        path: PathBuf,
        link: PathBuf,
        target: PathBuf,
    },

    #[error(
        "failed to resolve '{path}': more than {MAX_LINK_HOPS} links on the way (a loop of links?)"
    )]
    TooManyLinks { path: PathBuf },

    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Resolves `rel` (relative to `root`) component by component, following
/// links only within `root`. Returns the resolved path relative to
/// `root`, free of links as far as it exists on disk; components that do
/// not exist are kept as written (a missing file resolves to where it
/// would be). `root` itself is trusted as given.
pub fn resolve_beneath(root: &Path, rel: &Path) -> Result<PathBuf, BeneathError> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => pending.push_back(part.to_owned()),
            Component::ParentDir => pending.push_back("..".into()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(BeneathError::Escapes {
                    path: rel.to_owned(),
                    via: rel.to_owned(),
                });
            }
        }
    }
    let mut resolved = PathBuf::new();
    // Once a component is missing, nothing below it exists on disk, so the
    // rest is resolved as text (still never above the root).
    let mut on_disk = true;
    let mut hops = 0u32;
    let mut last_link = rel.to_owned();
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if !resolved.pop() {
                return Err(BeneathError::Escapes {
                    path: rel.to_owned(),
                    via: last_link,
                });
            }
            continue;
        }
        let candidate = resolved.join(&part);
        if !on_disk {
            resolved = candidate;
            continue;
        }
        let full = root.join(&candidate);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                on_disk = false;
                resolved = candidate;
                continue;
            }
            Err(source) => return Err(BeneathError::Io { path: full, source }),
        };
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(BeneathError::TooManyLinks {
                path: rel.to_owned(),
            });
        }
        let target =
            std::fs::read_link(&full).map_err(|source| BeneathError::Io { path: full, source })?;
        let mut spliced = Vec::new();
        for component in target.components() {
            match component {
                Component::Normal(p) => spliced.push(p.to_owned()),
                Component::ParentDir => spliced.push("..".into()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(BeneathError::Absolute {
                        path: rel.to_owned(),
                        link: candidate,
                        target,
                    });
                }
            }
        }
        // The target is relative to the folder holding the link, which is
        // `resolved` as it stands.
        for p in spliced.into_iter().rev() {
            pending.push_front(p);
        }
        last_link = candidate;
    }
    Ok(resolved)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub/deep")).unwrap();
        fs::write(root.join("index.html"), b"hi").unwrap();
        fs::write(dir.path().join("secret.key"), b"secret").unwrap();
        dir
    }

    #[test]
    fn follows_links_that_stay_inside_the_tree() {
        let dir = tree();
        let root = dir.path().join("root");
        symlink("index.html", root.join("alias.html")).unwrap();
        symlink("../index.html", root.join("sub/up.html")).unwrap();
        symlink("sub", root.join("s")).unwrap();
        symlink("../alias.html", root.join("sub/chain.html")).unwrap();
        assert_eq!(
            resolve_beneath(&root, Path::new("alias.html")).unwrap(),
            Path::new("index.html")
        );
        assert_eq!(
            resolve_beneath(&root, Path::new("sub/up.html")).unwrap(),
            Path::new("index.html")
        );
        assert_eq!(
            resolve_beneath(&root, Path::new("s/deep")).unwrap(),
            Path::new("sub/deep")
        );
        assert_eq!(
            resolve_beneath(&root, Path::new("s/chain.html")).unwrap(),
            Path::new("index.html")
        );
        // A missing file resolves to where it would be.
        assert_eq!(
            resolve_beneath(&root, Path::new("s/missing/x")).unwrap(),
            Path::new("sub/missing/x")
        );
    }

    #[test]
    fn refuses_parent_steps_through_a_link_to_the_same_folder() {
        let dir = tree();
        let root = dir.path().join("root");
        symlink(".", root.join("r")).unwrap();
        symlink("r/r/r/r/../secret.key", root.join("key")).unwrap();
        let err = resolve_beneath(&root, Path::new("key")).unwrap_err();
        assert!(matches!(err, BeneathError::Escapes { .. }), "{err}");
        assert!(err.to_string().contains("'key'"), "{err}");
        // The kernel itself does reach the secret: the test is meaningful.
        assert_eq!(fs::read(root.join("key")).unwrap(), b"secret");
    }

    #[test]
    fn refuses_chains_of_links_that_leave_in_the_end() {
        let dir = tree();
        let root = dir.path().join("root");
        symlink("sub/deep", root.join("a")).unwrap();
        symlink("../../..", root.join("sub/deep/b")).unwrap();
        symlink("a/b/secret.key", root.join("c")).unwrap();
        symlink("c", root.join("d")).unwrap();
        let err = resolve_beneath(&root, Path::new("d")).unwrap_err();
        assert!(matches!(err, BeneathError::Escapes { .. }), "{err}");
        assert_eq!(fs::read(root.join("d")).unwrap(), b"secret");
    }

    #[test]
    fn refuses_absolute_targets_and_absolute_paths() {
        let dir = tree();
        let root = dir.path().join("root");
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink("passwd", root.join("p2")).unwrap();
        let err = resolve_beneath(&root, Path::new("p2")).unwrap_err();
        assert!(matches!(err, BeneathError::Absolute { .. }), "{err}");
        assert!(err.to_string().contains("'passwd'"), "{err}");
        let err = resolve_beneath(&root, Path::new("/etc/passwd")).unwrap_err();
        assert!(matches!(err, BeneathError::Escapes { .. }), "{err}");
        let err = resolve_beneath(&root, Path::new("sub/../..")).unwrap_err();
        assert!(matches!(err, BeneathError::Escapes { .. }), "{err}");
    }

    #[test]
    fn stops_loops_of_links() {
        let dir = tree();
        let root = dir.path().join("root");
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        symlink("self", root.join("self")).unwrap();
        for name in ["a", "self"] {
            let err = resolve_beneath(&root, Path::new(name)).unwrap_err();
            assert!(matches!(err, BeneathError::TooManyLinks { .. }), "{err}");
        }
    }
}
