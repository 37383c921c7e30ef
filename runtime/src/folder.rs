//! Reading a Space from a folder on disk: its README and its file list.
//!
//! This is the I/O edge for `spaceport validate`, `spaceport plan` and
//! Spaces served from a folder. It lists files without following symbolic
//! links, skips `.git`, bounds how many files and how deep it looks, and
//! reads only the few files the plan needs, each only if it is a regular file
//! of bounded size, so a hostile folder cannot make it read outside itself
//! or without end.

use crate::plan::RepoFiles;
use crate::plan::input::PLAN_READS;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most files listed in one repo.
pub const MAX_FILES: usize = 200_000;
/// Deepest folder nesting followed.
pub const MAX_DEPTH: usize = 64;
/// Largest README read (the front matter is at its top).
pub const MAX_README_BYTES: u64 = 4 * 1024 * 1024;
/// Largest dependency file or Dockerfile read.
pub const MAX_PLAN_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no README.md")]
    NoReadme { path: PathBuf },
    #[error("{path} holds more than {MAX_FILES} files")]
    TooManyFiles { path: PathBuf },
    #[error("{path} is nested deeper than {MAX_DEPTH} folders")]
    TooDeep { path: PathBuf },
    #[error("{path}: file names must be UTF-8")]
    NonUtf8Name { path: PathBuf },
    #[error("{name} is a symbolic link or not a regular file; spaceport reads only regular files")]
    NotRegular { name: String },
    #[error("{name} is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("{name} is not UTF-8 text")]
    NotText { name: String },
}

/// A Space read from disk.
#[derive(Debug, Clone)]
pub struct SpaceFolder {
    pub root: PathBuf,
    pub readme: Vec<u8>,
    pub files: RepoFiles,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the README.md of a folder, or a README file given directly.
pub fn read_readme(path: &Path) -> Result<Vec<u8>, FolderError> {
    let file = if path.is_dir() {
        path.join("README.md")
    } else {
        path.to_owned()
    };
    let meta = fs::symlink_metadata(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && path.is_dir() {
            FolderError::NoReadme {
                path: path.to_owned(),
            }
        } else {
            FolderError::Io {
                path: file.clone(),
                source: e,
            }
        }
    })?;
    if !meta.is_file() {
        return Err(FolderError::NotRegular {
            name: file.display().to_string(),
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(&file)
        .and_then(|f| f.take(MAX_README_BYTES).read_to_end(&mut bytes))
        .map_err(io(&file))?;
    Ok(bytes)
}

/// Reads a Space folder: README, file list, and the files the plan reads.
pub fn read(root: &Path) -> Result<SpaceFolder, FolderError> {
    let readme = read_readme(root)?;
    let mut files = RepoFiles::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_owned(), String::new(), 0)];
    let mut count = 0usize;
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(FolderError::TooDeep { path: dir });
        }
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(FolderError::NonUtf8Name { path: entry.path() });
            };
            if prefix.is_empty() && name == ".git" {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            if kind.is_dir() {
                stack.push((entry.path(), rel, depth + 1));
                continue;
            }
            count += 1;
            if count > MAX_FILES {
                return Err(FolderError::TooManyFiles {
                    path: root.to_owned(),
                });
            }
            let text = if PLAN_READS.contains(&rel.as_str()) {
                Some(read_plan_file(&entry.path(), &rel, kind.is_file())?)
            } else {
                None
            };
            files.insert(rel, text);
        }
    }
    Ok(SpaceFolder {
        root: root.to_owned(),
        readme,
        files,
    })
}

fn read_plan_file(path: &Path, name: &str, regular: bool) -> Result<String, FolderError> {
    if !regular {
        return Err(FolderError::NotRegular {
            name: name.to_owned(),
        });
    }
    let len = fs::metadata(path).map_err(io(path))?.len();
    if len > MAX_PLAN_FILE_BYTES {
        return Err(FolderError::TooLarge {
            name: name.to_owned(),
            limit: MAX_PLAN_FILE_BYTES,
        });
    }
    let bytes = fs::read(path).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|_| FolderError::NotText {
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_reads_plan_files_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("README.md"), "---\nsdk: gradio\n---\n").unwrap();
        fs::write(root.join("app.py"), "print(1)").unwrap();
        fs::write(root.join("requirements.txt"), "numpy\n").unwrap();
        fs::create_dir_all(root.join("src/deep")).unwrap();
        fs::write(root.join("src/deep/x.py"), "").unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref: x").unwrap();
        let folder = read(root).unwrap();
        let paths: Vec<&str> = folder.files.paths().collect();
        assert_eq!(
            paths,
            ["README.md", "app.py", "requirements.txt", "src/deep/x.py"]
        );
        assert_eq!(folder.files.text("requirements.txt"), Some("numpy\n"));
        assert_eq!(folder.files.text("app.py"), None);
    }

    #[test]
    fn never_follows_a_symlinked_plan_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("README.md"), "---\nsdk: docker\n---\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("Dockerfile")).unwrap();
        let err = read(root).unwrap_err();
        assert!(matches!(err, FolderError::NotRegular { .. }), "{err}");
    }

    #[test]
    fn never_reads_or_walks_what_links_lead_to_outside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("outside.md"), "---\nsdk: static\n---\n").unwrap();
        fs::create_dir(dir.path().join("secrets")).unwrap();
        fs::write(dir.path().join("secrets/key"), "k").unwrap();
        let root = dir.path().join("space");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(".", root.join("r")).unwrap();
        std::os::unix::fs::symlink("r/r/../outside.md", root.join("README.md")).unwrap();
        let err = read(&root).unwrap_err();
        assert!(matches!(err, FolderError::NotRegular { .. }), "{err}");

        fs::remove_file(root.join("README.md")).unwrap();
        fs::write(root.join("README.md"), "---\nsdk: static\n---\n").unwrap();
        std::os::unix::fs::symlink("r/r/..", root.join("up")).unwrap();
        let folder = read(&root).unwrap();
        let paths: Vec<&str> = folder.files.paths().collect();
        assert_eq!(
            paths,
            ["README.md", "r", "up"],
            "links are listed, not walked"
        );
    }

    #[test]
    fn a_folder_without_readme_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("has no README.md"), "{err}");
    }
}
