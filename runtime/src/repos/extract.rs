//! Safe extraction of a tar stream (as `git archive` writes it) into an
//! empty folder.
//!
//! Every entry must stay inside the destination: no absolute paths, no
//! `..`, no writing through a symbolic link, no symbolic link whose target
//! leaves the destination, no hard links or device files. Totals are capped
//! so a huge tree fails with a clear error instead of filling the disk.
//!
//! A link's text cannot show where it leads once other links exist (`r ->
//! .` makes `r/r/../..` climb), and links extracted later change what
//! earlier ones resolve to, so once the whole tree is on disk every link is
//! resolved component by component within it (see [`resolve_beneath`]);
//! one that leaves, is absolute or loops fails the export, naming the link.

use super::beneath::{BeneathError, resolve_beneath};
use super::error::{RepoError, Result};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Caps on what one export may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Total bytes of file contents.
    pub max_bytes: u64,
    /// Number of entries (files, folders and links).
    pub max_entries: u64,
}

impl Default for ExportLimits {
    /// 16 GiB and 500,000 entries.
    fn default() -> Self {
        ExportLimits {
            max_bytes: 16 << 30,
            max_entries: 500_000,
        }
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Extracts the tar stream `reader` into `dest`, which must be an empty
/// folder or not exist yet. On error, `dest` may hold part of the tree;
/// the caller removes it.
pub fn extract_tar<R: Read>(reader: R, dest: &Path, limits: ExportLimits) -> Result<ExportStats> {
    prepare_dest(dest)?;
    let mut stats = ExportStats::default();
    let mut entries_seen = 0u64;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| RepoError::Unsafe(format!("failed to read the archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| RepoError::Unsafe(format!("failed to read the archive: {e}")))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| RepoError::Unsafe(format!("failed to read an entry name: {e}")))?
            .into_owned();
        let rel = relative_inside(&raw)?;
        if rel.as_os_str().is_empty() {
            // The archive's own root ("./").
            continue;
        }
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(RepoError::ExportLimit {
                what: "entries",
                limit: limits.max_entries,
            });
        }
        let target = dest.join(&rel);
        match kind {
            EntryType::Directory => {
                make_dirs(dest, &rel)?;
                stats.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.header().size().map_err(|e| {
                    RepoError::Unsafe(format!("bad size for '{}': {e}", rel.display()))
                })?;
                if stats.bytes.saturating_add(size) > limits.max_bytes {
                    return Err(RepoError::ExportLimit {
                        what: "bytes",
                        limit: limits.max_bytes,
                    });
                }
                if let Some(parent) = rel.parent() {
                    make_dirs(dest, parent)?;
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                let written = write_file(&target, &mut entry, size, mode)?;
                stats.bytes += written;
                stats.files += 1;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| {
                        RepoError::Unsafe(format!("bad link target for '{}': {e}", rel.display()))
                    })?
                    .ok_or_else(|| {
                        RepoError::Unsafe(format!("link '{}' has no target", rel.display()))
                    })?
                    .into_owned();
                check_link(&rel, &link)?;
                if let Some(parent) = rel.parent() {
                    make_dirs(dest, parent)?;
                }
                make_symlink(&link, &target)?;
                stats.symlinks += 1;
            }
            EntryType::Link => {
                return Err(RepoError::Unsafe(format!(
                    "'{}' is a hard link; repos may hold only files, folders and symbolic links",
                    rel.display()
                )));
            }
            other => {
                return Err(RepoError::Unsafe(format!(
                    "'{}' is of an unsupported type ({other:?}); repos may hold only files, folders and symbolic links",
                    rel.display()
                )));
            }
        }
    }
    if stats.symlinks > 0 {
        check_tree_links(dest)?;
    }
    Ok(stats)
}

/// Resolves every link of the extracted tree within it; the first that
/// leads outside (however spelled), is absolute or loops is an error
/// naming it.
fn check_tree_links(dest: &Path) -> Result<()> {
    let mut folders = vec![PathBuf::new()];
    while let Some(rel) = folders.pop() {
        let dir = dest.join(&rel);
        let listing = fs::read_dir(&dir).map_err(|e| RepoError::io("read", &dir, e))?;
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| RepoError::io("read", &dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| RepoError::io("read", entry.path(), e))?;
            names.push((entry.file_name(), kind));
        }
        // Sorted so the link named in the error is the same on every run.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in names {
            let path = rel.join(&name);
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_symlink() {
                resolve_beneath(dest, &path).map_err(|e| refuse_link(dest, &path, e))?;
            }
        }
    }
    Ok(())
}

fn refuse_link(dest: &Path, link: &Path, error: BeneathError) -> RepoError {
    let target = fs::read_link(dest.join(link))
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    let why = match error {
        BeneathError::Escapes { .. } => "leads outside the repo's files".to_owned(),
        BeneathError::Absolute { link: via, .. } if via == link => {
            "is absolute; links must be relative and stay inside the repo".to_owned()
        }
        BeneathError::Absolute { link: via, .. } => format!(
            "goes through '{}', an absolute link; links must be relative and stay inside the repo",
            via.display()
        ),
        BeneathError::TooManyLinks { .. } => "goes through a loop of links".to_owned(),
        BeneathError::Io { path, source } => {
            return RepoError::io("read", path, source);
        }
    };
    RepoError::Unsafe(format!(
        "link '{}' -> '{target}' {why}; remove it or point it at a file of the repo",
        link.display()
    ))
}

fn prepare_dest(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            let mut listing = fs::read_dir(dest).map_err(|e| RepoError::io("read", dest, e))?;
            if listing.next().is_some() {
                return Err(RepoError::Unsafe(format!(
                    "{} is not empty; export into an empty folder",
                    dest.display()
                )));
            }
            Ok(())
        }
        Ok(_) => Err(RepoError::Unsafe(format!(
            "{} is not a folder",
            dest.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|e| RepoError::io("create", dest, e))
        }
        Err(e) => Err(RepoError::io("read", dest, e)),
    }
}

/// The entry's path as plain relative components, or an error when it
/// could leave the destination.
fn relative_inside(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(RepoError::Unsafe(format!(
                    "entry '{}' points outside the destination",
                    raw.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Creates the folders of `rel` under `dest`, refusing to pass through
/// anything that is not a real folder (a symbolic link in particular).
fn make_dirs(dest: &Path, rel: &Path) -> Result<()> {
    let mut at = dest.to_path_buf();
    for component in rel.components() {
        at.push(component);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(RepoError::Unsafe(format!(
                    "'{}' would be written through a symbolic link or file",
                    rel.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at).map_err(|e| RepoError::io("create", &at, e))?;
            }
            Err(e) => return Err(RepoError::io("read", &at, e)),
        }
    }
    Ok(())
}

/// A link's target, resolved as text from the folder holding the link,
/// must stay inside the destination.
fn check_link(rel: &Path, link: &Path) -> Result<()> {
    let refuse = || {
        RepoError::Unsafe(format!(
            "link '{}' points outside the destination ({})",
            rel.display(),
            link.display()
        ))
    };
    let mut depth = rel.parent().map_or(0, |p| p.components().count());
    for component in link.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1).ok_or_else(refuse)?,
            Component::RootDir | Component::Prefix(_) => return Err(refuse()),
        }
    }
    Ok(())
}

fn write_file(target: &Path, reader: &mut impl Read, size: u64, mode: u32) -> Result<u64> {
    let mut options = fs::OpenOptions::new();
    // create_new: never follow or overwrite something already there.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(target).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            RepoError::Unsafe(format!(
                "'{}' appears twice in the archive",
                target.display()
            ))
        } else {
            RepoError::io("create", target, e)
        }
    })?;
    let written = io::copy(&mut reader.take(size), &mut file)
        .map_err(|e| RepoError::io("write", target, e))?;
    Ok(written)
}

#[cfg(unix)]
fn make_symlink(link: &Path, target: &Path) -> Result<()> {
    std::os::unix::fs::symlink(link, target)
        .map_err(|e| RepoError::io("create the link", target, e))
}

#[cfg(not(unix))]
fn make_symlink(_link: &Path, target: &Path) -> Result<()> {
    Err(RepoError::Unsafe(format!(
        "'{}' is a symbolic link, which this system cannot create",
        target.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar built by hand, header by header, so names the `tar` crate's
    /// builder would refuse (`..`, absolute paths) can be written.
    struct RawTar(Vec<u8>);

    impl RawTar {
        fn new() -> Self {
            RawTar(Vec::new())
        }

        fn entry(mut self, name: &str, kind: u8, link: &str, data: &[u8]) -> Self {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            let size = format!("{:011o}\0", data.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = kind;
            h[157..157 + link.len()].copy_from_slice(link.as_bytes());
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            self.0.extend_from_slice(&h);
            self.0.extend_from_slice(data);
            let padded = self.0.len().div_ceil(512) * 512;
            self.0.resize(padded, 0);
            self
        }

        fn file(self, name: &str, data: &[u8]) -> Self {
            self.entry(name, b'0', "", data)
        }

        fn finish(mut self) -> Vec<u8> {
            self.0.resize(self.0.len() + 1024, 0);
            self.0
        }
    }

    fn extract(tar: &[u8]) -> (tempfile::TempDir, Result<ExportStats>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let result = extract_tar(tar, &dest, ExportLimits::default());
        (dir, result)
    }

    #[test]
    fn extracts_files_folders_and_inside_links() {
        let tar = RawTar::new()
            .entry("app/", b'5', "", b"")
            .file("app/main.py", b"print('hi')\n")
            .file("README.md", b"# demo\n")
            .entry("docs/readme", b'2', "../README.md", b"")
            .finish();
        let (dir, result) = extract(&tar);
        let stats = result.unwrap();
        assert_eq!(stats.files, 2);
        assert_eq!(stats.symlinks, 1);
        assert_eq!(stats.bytes, 12 + 7);
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("app/main.py")).unwrap(), b"print('hi')\n");
        assert_eq!(fs::read(out.join("docs/readme")).unwrap(), b"# demo\n");
    }

    #[test]
    fn refuses_parent_dir_entries() {
        let tar = RawTar::new().file("../evil.txt", b"x").finish();
        let (dir, result) = extract(&tar);
        let err = result.unwrap_err();
        assert!(matches!(err, RepoError::Unsafe(_)), "{err}");
        assert!(err.to_string().contains("outside the destination"), "{err}");
        assert!(!dir.path().join("evil.txt").exists());

        let tar = RawTar::new().file("a/../../evil.txt", b"x").finish();
        let (dir, result) = extract(&tar);
        assert!(matches!(result, Err(RepoError::Unsafe(_))));
        assert!(!dir.path().join("evil.txt").exists());
    }

    #[test]
    fn refuses_absolute_entries() {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{}/abs.txt", dir.path().display());
        let tar = RawTar::new().file(&name, b"x").finish();
        let result = extract_tar(&tar[..], &dir.path().join("out"), ExportLimits::default());
        assert!(matches!(result, Err(RepoError::Unsafe(_))));
        assert!(!dir.path().join("abs.txt").exists());
    }

    #[test]
    fn refuses_links_leaving_the_destination_and_writes_through_links() {
        for (name, target) in [("up", ".."), ("a/b/up", "../../.."), ("abs", "/etc")] {
            let tar = RawTar::new().entry(name, b'2', target, b"").finish();
            let (_dir, result) = extract(&tar);
            assert!(
                matches!(result, Err(RepoError::Unsafe(_))),
                "{name} -> {target} was accepted"
            );
        }
        // A link inside, then a file written through it.
        let tar = RawTar::new()
            .entry("sub/", b'5', "", b"")
            .entry("l", b'2', "sub", b"")
            .file("l/x.txt", b"x")
            .finish();
        let (dir, result) = extract(&tar);
        assert!(matches!(result, Err(RepoError::Unsafe(_))));
        assert!(!dir.path().join("out/sub/x.txt").exists());
        // The same path twice: the second must not follow the first.
        let tar = RawTar::new()
            .entry("f", b'2', "sub", b"")
            .file("f", b"x")
            .finish();
        let (_dir, result) = extract(&tar);
        assert!(matches!(result, Err(RepoError::Unsafe(_))));
    }

    fn link_error(tar: &[u8]) -> String {
        let (_dir, result) = extract(tar);
        let err = result.expect_err("the tree was accepted");
        assert!(matches!(err, RepoError::Unsafe(_)), "{err}");
        err.to_string()
    }

    #[test]
    fn refuses_a_link_that_climbs_out_through_a_link_to_its_own_folder() {
        let tar = RawTar::new()
            .file("index.html", b"hi")
            .entry("r", b'2', ".", b"")
            .entry("key", b'2', "r/r/r/r/../../../../secret.key", b"")
            .finish();
        let err = link_error(&tar);
        assert!(err.contains("link 'key'"), "{err}");
        assert!(err.contains("outside the repo"), "{err}");
    }

    #[test]
    fn refuses_a_link_that_a_link_extracted_later_makes_leave() {
        let tar = RawTar::new()
            .entry("key", b'2', "r/r/../../secret.key", b"")
            .entry("r", b'2', ".", b"")
            .finish();
        let err = link_error(&tar);
        assert!(err.contains("link 'key'"), "{err}");
    }

    #[test]
    fn refuses_chains_of_links_that_end_outside() {
        let tar = RawTar::new()
            .entry("a/b/", b'5', "", b"")
            .entry("a/b/up", b'2', "../..", b"")
            .entry("a/b/top", b'2', "up", b"")
            .entry("z", b'2', "a/b/top/..", b"")
            .finish();
        let err = link_error(&tar);
        assert!(err.contains("link 'z'"), "{err}");
    }

    #[test]
    fn refuses_loops_of_links() {
        let tar = RawTar::new()
            .entry("a", b'2', "b", b"")
            .entry("b", b'2', "a", b"")
            .finish();
        let err = link_error(&tar);
        assert!(err.contains("loop of links"), "{err}");
    }

    #[test]
    fn refuses_absolute_links_naming_the_link() {
        let tar = RawTar::new()
            .entry("passwd", b'2', "/etc/passwd", b"")
            .finish();
        let err = link_error(&tar);
        assert!(err.contains("'passwd'"), "{err}");
    }

    #[test]
    fn keeps_chains_of_links_that_stay_inside() {
        let tar = RawTar::new()
            .file("index.html", b"hi")
            .entry("r", b'2', ".", b"")
            .entry("alias.html", b'2', "r/r/index.html", b"")
            .entry("docs/", b'5', "", b"")
            .entry("docs/home.html", b'2', "../alias.html", b"")
            .finish();
        let (dir, result) = extract(&tar);
        assert_eq!(result.unwrap().symlinks, 3);
        assert_eq!(
            fs::read(dir.path().join("out/docs/home.html")).unwrap(),
            b"hi"
        );
    }

    #[test]
    fn refuses_hard_links_and_devices() {
        let tar = RawTar::new()
            .file("a", b"x")
            .entry("b", b'1', "a", b"")
            .finish();
        assert!(matches!(extract(&tar).1, Err(RepoError::Unsafe(_))));
        let tar = RawTar::new().entry("dev", b'3', "", b"").finish();
        assert!(matches!(extract(&tar).1, Err(RepoError::Unsafe(_))));
    }

    #[test]
    fn caps_bytes_and_entries() {
        let tar = RawTar::new()
            .file("a", &[1; 600])
            .file("b", &[2; 600])
            .finish();
        let dir = tempfile::tempdir().unwrap();
        let limits = ExportLimits {
            max_bytes: 1000,
            max_entries: 10,
        };
        let err = extract_tar(&tar[..], &dir.path().join("o1"), limits).unwrap_err();
        assert!(
            matches!(err, RepoError::ExportLimit { what: "bytes", .. }),
            "{err}"
        );
        let limits = ExportLimits {
            max_bytes: 10_000,
            max_entries: 1,
        };
        let err = extract_tar(&tar[..], &dir.path().join("o2"), limits).unwrap_err();
        assert!(
            matches!(
                err,
                RepoError::ExportLimit {
                    what: "entries",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("raise the export limit"));
    }

    #[test]
    fn refuses_a_non_empty_destination() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("there"), b"x").unwrap();
        let tar = RawTar::new().file("a", b"x").finish();
        let err = extract_tar(&tar[..], dir.path(), ExportLimits::default()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
