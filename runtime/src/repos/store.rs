//! The repo store: bare git repos on disk, one per Space, model or
//! dataset, at `<root>/<kind plural>/<owner>/<name>.git`.
//!
//! Every git command runs with a clean environment: no inherited `GIT_*`
//! variables, no system config (`GIT_CONFIG_NOSYSTEM`), `HOME` pointing at
//! an empty folder under the root, and the C locale so messages are stable.

use super::error::{RepoError, Result};
use super::extract::{ExportLimits, ExportStats, extract_tar};
use super::{RepoKind, hooks};
use crate::plan::SpaceId;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Output, Stdio};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Default cap on one push: 1 GiB.
pub const DEFAULT_MAX_PUSH_BYTES: u64 = 1 << 30;
/// Default cap on one fetch negotiation request (wants and haves): 16 MiB.
pub const DEFAULT_MAX_FETCH_REQUEST_BYTES: u64 = 16 << 20;

/// Bare git repos under one root folder.
#[derive(Debug, Clone)]
pub struct RepoStore {
    root: PathBuf,
    home: PathBuf,
    tmp: PathBuf,
    max_push_bytes: u64,
    max_fetch_request_bytes: u64,
    export_limits: ExportLimits,
}

impl RepoStore {
    /// Opens (creating when missing) the store at `root`, with the default
    /// limits: pushes up to [`DEFAULT_MAX_PUSH_BYTES`], fetch requests up to
    /// [`DEFAULT_MAX_FETCH_REQUEST_BYTES`], exports up to
    /// [`ExportLimits::default`].
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| RepoError::io("create", root, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| RepoError::io("resolve", root, e))?;
        // Owners never start with '.', so these never meet a repo.
        let home = root.join(".home");
        let tmp = root.join(".tmp");
        for dir in [&home, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| RepoError::io("create", dir, e))?;
        }
        Ok(RepoStore {
            root,
            home,
            tmp,
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES,
            max_fetch_request_bytes: DEFAULT_MAX_FETCH_REQUEST_BYTES,
            export_limits: ExportLimits::default(),
        })
    }

    /// Sets the cap on one push (git's `receive.maxInputSize`, and the cap
    /// on the request body of `git-receive-pack`, plus 1 MiB for the ref
    /// commands).
    pub fn with_max_push_bytes(mut self, bytes: u64) -> Self {
        self.max_push_bytes = bytes;
        self
    }

    /// Sets the cap on the request body of `git-upload-pack`.
    pub fn with_max_fetch_request_bytes(mut self, bytes: u64) -> Self {
        self.max_fetch_request_bytes = bytes;
        self
    }

    /// Sets the caps on [`export`](Self::export).
    pub fn with_export_limits(mut self, limits: ExportLimits) -> Self {
        self.export_limits = limits;
        self
    }

    /// The store's root folder (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cap on one push, in bytes.
    pub fn max_push_bytes(&self) -> u64 {
        self.max_push_bytes
    }

    /// The cap on a `git-upload-pack` request body, in bytes.
    pub fn max_fetch_request_bytes(&self) -> u64 {
        self.max_fetch_request_bytes
    }

    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where the repo lives (whether or not it exists):
    /// `<root>/<kind plural>/<owner>/<name>.git`. Fails for an owner or
    /// name that is not one plain path component.
    pub fn path(&self, kind: RepoKind, id: &SpaceId) -> Result<PathBuf> {
        for part in [id.owner(), id.name()] {
            let mut components = Path::new(part).components();
            let plain = matches!(components.next(), Some(Component::Normal(c)) if c == part)
                && components.next().is_none()
                && !part.starts_with('.')
                && !part.contains(['/', '\\', '\0']);
            if !plain {
                return Err(RepoError::InvalidName(format!(
                    "{}/{}",
                    id.owner(),
                    id.name()
                )));
            }
        }
        Ok(self
            .root
            .join(kind.plural())
            .join(id.owner())
            .join(format!("{}.git", id.name())))
    }

    /// Whether the repo exists (a bare repo is there).
    pub fn exists(&self, kind: RepoKind, id: &SpaceId) -> Result<bool> {
        let path = self.path(kind, id)?;
        Ok(path.join("HEAD").is_file())
    }

    /// The path of a repo that must exist.
    pub(crate) fn existing(&self, kind: RepoKind, id: &SpaceId) -> Result<PathBuf> {
        let path = self.path(kind, id)?;
        if path.join("HEAD").is_file() {
            Ok(path)
        } else {
            Err(RepoError::NotFound {
                kind,
                id: format!("{}/{}", id.owner(), id.name()),
            })
        }
    }

    /// Creates an empty bare repo with `main` as its branch, the push rules
    /// (no non-fast-forward, no deletes, the size cap) and the hooks, and
    /// returns its path. The repo appears whole or not at all: it is made
    /// in a temporary folder next to its final place and renamed there.
    pub async fn create(&self, kind: RepoKind, id: &SpaceId) -> Result<PathBuf> {
        let path = self.path(kind, id)?;
        let already = || RepoError::AlreadyExists {
            kind,
            id: format!("{}/{}", id.owner(), id.name()),
        };
        if path.exists() {
            return Err(already());
        }
        let parent = path.parent().expect("a repo path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| RepoError::io("create", parent, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".creating-")
            .tempdir_in(parent)
            .map_err(|e| RepoError::io("create a folder in", parent, e))?;
        let mut init = self.command();
        init.arg("init")
            .arg("--bare")
            .arg("--quiet")
            .arg("--initial-branch=main")
            .arg("--template=")
            .arg(staging.path());
        run(init, "init").await?;
        let max = self.max_push_bytes.to_string();
        for (key, value) in [
            ("receive.denyNonFastForwards", "true"),
            ("receive.denyDeletes", "true"),
            ("receive.maxInputSize", max.as_str()),
            ("http.receivepack", "true"),
            ("core.logAllRefUpdates", "true"),
        ] {
            let mut config = self.git_in(staging.path());
            config.args(["config", key, value]);
            run(config, "config").await?;
        }
        install_hooks(staging.path(), kind)?;
        let staged = staging.keep();
        match std::fs::rename(&staged, &path) {
            Ok(()) => {}
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(if path.join("HEAD").exists() {
                    already()
                } else {
                    RepoError::io("move the new repo to", &path, e)
                });
            }
        }
        tracing::info!(%kind, owner = id.owner(), name = id.name(), "created repo");
        Ok(path)
    }

    /// Deletes the repo and everything in it. Fails when it does not exist.
    pub async fn delete(&self, kind: RepoKind, id: &SpaceId) -> Result<()> {
        let path = self.existing(kind, id)?;
        // Move it out of the way first so it vanishes at once, then remove
        // it at leisure.
        let grave = tempfile::Builder::new()
            .prefix("deleting-")
            .tempdir_in(&self.tmp)
            .map_err(|e| RepoError::io("create a folder in", &self.tmp, e))?;
        std::fs::rename(&path, grave.path().join("repo"))
            .map_err(|e| RepoError::io("move away", &path, e))?;
        let grave_path = grave.path().to_path_buf();
        tokio::task::spawn_blocking(move || grave.close())
            .await
            .map_err(|e| RepoError::io("remove", &grave_path, std::io::Error::other(e)))?
            .map_err(|e| RepoError::io("remove", &grave_path, e))?;
        tracing::info!(%kind, owner = id.owner(), name = id.name(), "deleted repo");
        Ok(())
    }

    /// The commit a branch points at, or `None` when the branch does not
    /// exist (an empty repo has no `main` yet).
    pub async fn head(&self, kind: RepoKind, id: &SpaceId, branch: &str) -> Result<Option<String>> {
        let path = self.existing(kind, id)?;
        check_rev(id, branch)?;
        self.rev_parse(&path, &format!("refs/heads/{branch}^{{commit}}"))
            .await
    }

    /// The commit of a branch, a tag or a full commit hash. Abbreviated
    /// hashes and revision expressions (`main~1`) are refused.
    pub async fn resolve(&self, kind: RepoKind, id: &SpaceId, rev: &str) -> Result<String> {
        let path = self.existing(kind, id)?;
        check_rev(id, rev)?;
        let full_hash = matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit());
        let mut candidates = Vec::new();
        if full_hash {
            candidates.push(rev.to_ascii_lowercase());
        }
        candidates.push(format!("refs/heads/{rev}"));
        candidates.push(format!("refs/tags/{rev}"));
        for candidate in candidates {
            if let Some(sha) = self
                .rev_parse(&path, &format!("{candidate}^{{commit}}"))
                .await?
            {
                return Ok(sha);
            }
        }
        Err(RepoError::RevisionNotFound {
            id: format!("{}/{}", id.owner(), id.name()),
            rev: rev.to_owned(),
        })
    }

    /// Every file of a commit (`rev` as for [`resolve`](Self::resolve)),
    /// with its size in bytes, in git's order. Submodules are left out.
    pub async fn list_files(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        rev: &str,
    ) -> Result<Vec<(String, u64)>> {
        let sha = self.resolve(kind, id, rev).await?;
        let path = self.existing(kind, id)?;
        let mut cmd = self.git_in(&path);
        cmd.args(["ls-tree", "-r", "-l", "-z", "--full-tree", &sha]);
        let out = run(cmd, "ls-tree").await?;
        parse_ls_tree(&out.stdout)
    }

    /// The bytes of one file at a revision, or `None` when the commit has
    /// no such file. Files over `max_bytes` are refused.
    pub async fn read_file(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        rev: &str,
        file: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>> {
        let sha = self.resolve(kind, id, rev).await?;
        let path = self.existing(kind, id)?;
        if file.is_empty()
            || file.starts_with('/')
            || file.split('/').any(|p| p == ".." || p.is_empty())
        {
            return Ok(None);
        }
        let object = format!("{sha}:{file}");
        let mut cmd = self.git_in(&path);
        cmd.args(["cat-file", "-s", &object]);
        let Ok(size) = run(cmd, "cat-file").await else {
            return Ok(None);
        };
        let size: u64 = String::from_utf8_lossy(&size.stdout)
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(RepoError::BadRequest(format!(
                "{file} is {size} bytes, more than the {max_bytes} read here"
            )));
        }
        let mut cmd = self.git_in(&path);
        cmd.args(["cat-file", "blob", &object]);
        Ok(Some(run(cmd, "cat-file").await?.stdout))
    }

    /// Commits the files of a folder (the whole tree, `.git` aside) on top
    /// of `main` as one new commit, without a work tree of the repo: for
    /// seeding repos from folders on disk. Returns the new commit.
    pub async fn import_folder(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        folder: &Path,
        message: &str,
    ) -> Result<String> {
        let path = self.existing(kind, id)?;
        let scratch = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(self.root.join(".tmp"))
            .map_err(|e| RepoError::io("create", self.root.join(".tmp"), e))?;
        let index = scratch.path().join("index");
        let with_tree = |cmd: &mut Command| {
            cmd.env("GIT_INDEX_FILE", &index)
                .env("GIT_WORK_TREE", folder);
        };
        let mut cmd = self.git_in(&path);
        with_tree(&mut cmd);
        cmd.args(["add", "-A", "--", ".", ":(exclude).git"]);
        run(cmd, "add").await?;
        let mut cmd = self.git_in(&path);
        with_tree(&mut cmd);
        cmd.arg("write-tree");
        let tree = String::from_utf8_lossy(&run(cmd, "write-tree").await?.stdout)
            .trim()
            .to_owned();
        let parent = self.head(kind, id, "main").await?;
        let mut cmd = self.git_in(&path);
        cmd.env("GIT_AUTHOR_NAME", "spaceport")
            .env("GIT_AUTHOR_EMAIL", "spaceport@localhost")
            .env("GIT_COMMITTER_NAME", "spaceport")
            .env("GIT_COMMITTER_EMAIL", "spaceport@localhost")
            .args(["commit-tree", &tree, "-m", message]);
        if let Some(p) = &parent {
            cmd.args(["-p", p]);
        }
        let commit = String::from_utf8_lossy(&run(cmd, "commit-tree").await?.stdout)
            .trim()
            .to_owned();
        let mut cmd = self.git_in(&path);
        cmd.args(["update-ref", "refs/heads/main", &commit]);
        if let Some(p) = &parent {
            cmd.arg(p);
        }
        run(cmd, "update-ref").await?;
        Ok(commit)
    }

    /// Writes the tree of a commit (`rev` as for [`resolve`](Self::resolve))
    /// into `dest`, an empty or missing folder: `git archive` streamed into
    /// a checked extraction (see [`extract_tar`]) under the store's export
    /// limits. On error `dest` may hold part of the tree.
    pub async fn export(
        &self,
        kind: RepoKind,
        id: &SpaceId,
        rev: &str,
        dest: &Path,
    ) -> Result<ExportStats> {
        let sha = self.resolve(kind, id, rev).await?;
        let path = self.existing(kind, id)?;
        let mut cmd = self.git_in(&path);
        cmd.args(["archive", "--format=tar", &sha])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| RepoError::Spawn {
            command: "archive".into(),
            source,
        })?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let dest = dest.to_path_buf();
        let limits = self.export_limits;
        let handle = tokio::runtime::Handle::current();
        let extracted = tokio::task::spawn_blocking(move || {
            let mut reader = BlockingReader {
                inner: stdout,
                handle,
            };
            let stats = extract_tar(&mut reader, &dest, limits)?;
            // Read the end padding so git is never left blocked on a write.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            Ok::<_, RepoError>(stats)
        })
        .await
        .map_err(|e| RepoError::Git {
            command: "archive".into(),
            message: e.to_string(),
        })?;
        let stats = match extracted {
            Ok(stats) => stats,
            Err(e) => {
                let _ = child.kill().await;
                return Err(e);
            }
        };
        let status = child.wait().await.map_err(|source| RepoError::Spawn {
            command: "archive".into(),
            source,
        })?;
        if !status.success() {
            return Err(RepoError::Git {
                command: "archive".into(),
                message: errors.await.unwrap_or_default().trim().to_owned(),
            });
        }
        Ok(stats)
    }

    /// `git` with the clean environment.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH")
                    .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
            )
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `git --git-dir=<repo>` with the clean environment.
    pub(crate) fn git_in(&self, repo: &Path) -> Command {
        let mut cmd = self.command();
        let mut dir = OsString::from("--git-dir=");
        dir.push(repo);
        cmd.arg(dir);
        cmd
    }

    /// `git rev-parse --verify` of one expression: `None` when it names
    /// nothing.
    async fn rev_parse(&self, repo: &Path, expr: &str) -> Result<Option<String>> {
        let mut cmd = self.git_in(repo);
        cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options", expr]);
        let out = cmd.output().await.map_err(|source| RepoError::Spawn {
            command: "rev-parse".into(),
            source,
        })?;
        match out.status.code() {
            Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())),
            Some(1) => Ok(None),
            _ => Err(git_failed("rev-parse", &out)),
        }
    }
}

fn install_hooks(repo: &Path, kind: RepoKind) -> Result<()> {
    let dir = repo.join("hooks");
    std::fs::create_dir_all(&dir).map_err(|e| RepoError::io("create", &dir, e))?;
    let hook = dir.join("post-receive");
    std::fs::write(&hook, hooks::post_receive(kind))
        .map_err(|e| RepoError::io("write", &hook, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| RepoError::io("make executable", &hook, e))?;
    }
    Ok(())
}

/// Branch and tag names and hashes: letters, digits, `-_./`, no `..`, not
/// starting with `-`, `.` or `/` (so never an option or a path trick).
fn check_rev(id: &SpaceId, rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 255
        && rev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !rev.contains("..")
        && !rev.contains("//")
        && !rev.starts_with(['-', '.', '/'])
        && !rev.ends_with(['/', '.'])
        && !rev.ends_with(".lock");
    if ok {
        Ok(())
    } else {
        Err(RepoError::RevisionNotFound {
            id: format!("{}/{}", id.owner(), id.name()),
            rev: rev.to_owned(),
        })
    }
}

/// Parses `git ls-tree -r -l -z`: `<mode> <type> <object> <size>\t<path>\0`.
fn parse_ls_tree(out: &[u8]) -> Result<Vec<(String, u64)>> {
    let bad = |what: &str| RepoError::Git {
        command: "ls-tree".into(),
        message: format!("unexpected output: {what}"),
    };
    let mut files = Vec::new();
    for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let text = std::str::from_utf8(record).map_err(|_| bad("a path that is not UTF-8"))?;
        let (meta, path) = text.split_once('\t').ok_or_else(|| bad(text))?;
        let mut fields = meta.split_ascii_whitespace();
        let (_mode, kind, _object, size) =
            (fields.next(), fields.next(), fields.next(), fields.next());
        if kind != Some("blob") {
            continue;
        }
        let size = size
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad(text))?;
        files.push((path.to_owned(), size));
    }
    Ok(files)
}

pub(crate) async fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd.output().await.map_err(|source| RepoError::Spawn {
        command: what.to_owned(),
        source,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(git_failed(what, &out))
    }
}

fn git_failed(what: &str, out: &Output) -> RepoError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    RepoError::Git {
        command: what.to_owned(),
        message: if stderr.is_empty() {
            format!("exited with {}", out.status)
        } else {
            stderr
        },
    }
}

/// Reads an async pipe from a blocking thread.
struct BlockingReader {
    inner: tokio::process::ChildStdout,
    handle: tokio::runtime::Handle,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.handle.block_on(self.inner.read(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_tree_output_is_parsed() {
        let out = b"100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391       0\tREADME.md\0\
100755 blob 3b18e512dba79e4c8300dd08aeb37f8e728b8dad      12\tapp/run.sh\0\
160000 commit 3b18e512dba79e4c8300dd08aeb37f8e728b8dad       -\tvendor/lib\0";
        assert_eq!(
            parse_ls_tree(out).unwrap(),
            vec![("README.md".to_owned(), 0), ("app/run.sh".to_owned(), 12)]
        );
    }

    #[test]
    fn revisions_that_could_be_options_are_refused() {
        let id = SpaceId::parse("alice/demo").unwrap();
        for rev in ["main", "v1.0", "feature/x", "0123abcd"] {
            assert!(check_rev(&id, rev).is_ok(), "{rev}");
        }
        for rev in [
            "", "-n", "--all", "a..b", "main~1", "main^", "/x", "x/", "@{1}", "a b",
        ] {
            assert!(check_rev(&id, rev).is_err(), "{rev}");
        }
    }

    #[tokio::test]
    async fn paths_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = RepoStore::open(dir.path()).unwrap();
        let id = SpaceId::parse("alice/demo").unwrap();
        let path = store.path(RepoKind::Dataset, &id).unwrap();
        assert_eq!(path, store.root().join("datasets/alice/demo.git"));
        assert!(path.starts_with(store.root()));
    }

    #[tokio::test]
    async fn create_head_resolve_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = RepoStore::open(dir.path())
            .unwrap()
            .with_max_push_bytes(12345);
        let id = SpaceId::parse("alice/demo").unwrap();
        assert!(!store.exists(RepoKind::Space, &id).unwrap());
        let path = store.create(RepoKind::Space, &id).await.unwrap();
        assert!(store.exists(RepoKind::Space, &id).unwrap());
        assert!(matches!(
            store.create(RepoKind::Space, &id).await,
            Err(RepoError::AlreadyExists { .. })
        ));
        let config = std::fs::read_to_string(path.join("config")).unwrap();
        assert!(config.contains("maxInputSize = 12345"), "{config}");
        assert!(config.contains("denyNonFastForwards = true"), "{config}");
        let hook = path.join("hooks/post-receive");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
                0o111
            );
        }
        assert_eq!(
            store.head(RepoKind::Space, &id, "main").await.unwrap(),
            None
        );
        assert!(matches!(
            store.resolve(RepoKind::Space, &id, "main").await,
            Err(RepoError::RevisionNotFound { .. })
        ));
        store.delete(RepoKind::Space, &id).await.unwrap();
        assert!(!store.exists(RepoKind::Space, &id).unwrap());
        assert!(matches!(
            store.head(RepoKind::Space, &id, "main").await,
            Err(RepoError::NotFound { .. })
        ));
        // Nothing left behind next to where the repo was.
        let owner_dir = store.root().join("spaces/alice");
        assert_eq!(std::fs::read_dir(owner_dir).unwrap().count(), 0);
    }
}
