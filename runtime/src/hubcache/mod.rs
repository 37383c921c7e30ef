//! The node's cache of model and dataset repos, in the layout
//! `huggingface_hub` reads (`models--org--name/{blobs,snapshots,refs}`),
//! filled from a hub that speaks the download API: spaceport's own repos,
//! huggingface.co or a mirror. Spaces mount their repos' folders
//! read-only as their `HF_HUB_CACHE`, so a Space that wakes, or a second
//! Space using the same model, downloads nothing.
//!
//! Guarantees: a blob is downloaded once however many fills want it at
//! the same time (a file lock per blob, across processes); an interrupted
//! download resumes where it stopped (a range request on the
//! `.incomplete` file); every blob is verified (SHA-256 for large files,
//! the git blob id for the others) before it is renamed into place, and
//! snapshot links are made only after, so no truncated blob is ever
//! visible in a snapshot. [`HubCache::evict`] keeps the cache under a size
//! by removing the snapshots used least recently that no running Space
//! mounts, then the blobs no snapshot links to.

pub mod http;
mod verify;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use http_body_util::BodyExt;

pub use http::Upstream;

use crate::plan::{HubRepoType, Want};

/// How many files of one fill download at the same time.
const PARALLEL_FILES: usize = 4;

/// Counters of the cache, since start.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Files found in the cache.
    pub hits: AtomicU64,
    /// Files downloaded.
    pub misses: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    /// Bytes a fill found already there (saved by sharing).
    pub bytes_reused: AtomicU64,
    pub fills: AtomicU64,
    /// Milliseconds spent in fills.
    pub fill_millis: AtomicU64,
}

/// What one fill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FillReport {
    pub commit: String,
    pub files: usize,
    pub hits: usize,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
    pub elapsed: Duration,
}

/// One repo (a revision, some or all of its files) to have in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRequest {
    pub repo_type: HubRepoType,
    pub repo_id: String,
    pub want: Want,
}

/// A file of the remote tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    path: String,
    /// The blob's name in the cache: the SHA-256 for large files, else
    /// the git blob id.
    etag: String,
    size: u64,
}

/// A listed file, checked: a plain path and a blob name that is a git
/// object id or a SHA-256.
fn remote_entry(
    id: &str,
    listed: &serde_json::Value,
    path: &str,
    etag: &str,
    size: Option<u64>,
) -> Result<Remote, String> {
    if !plain_path(path) || !(hex(etag, 40) || hex(etag, 64)) {
        return Err(format!("{id}: the hub listed an unusable entry {listed}"));
    }
    Ok(Remote {
        path: path.to_owned(),
        etag: etag.to_ascii_lowercase(),
        size: size.unwrap_or(0),
    })
}

/// The cache under one folder.
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
    stats: Arc<CacheStats>,
}

fn plain_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains(['\0', '\\'])
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

fn hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link target of a snapshot file `path` to blob `etag`: relative,
/// so the repo's folder can be mounted anywhere.
pub fn link_target(path: &str, etag: &str) -> PathBuf {
    let depth = path.matches('/').count() + 2;
    let mut t = PathBuf::new();
    for _ in 0..depth {
        t.push("..");
    }
    t.join("blobs").join(etag)
}

impl HubCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache {
            root: root.into(),
            stats: Arc::new(CacheStats::default()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// `models--org--name`, under the root.
    pub fn repo_folder(&self, repo_type: HubRepoType, repo_id: &str) -> PathBuf {
        self.root.join(format!(
            "{}--{}",
            repo_type.cache_prefix(),
            repo_id.replace('/', "--")
        ))
    }

    /// Makes the revision (or the listed files of it) present, downloading
    /// only what is missing.
    pub async fn fill(&self, up: &Upstream, req: &FillRequest) -> Result<FillReport, String> {
        let started = Instant::now();
        let id = &req.repo_id;
        if id.split('/').count() != 2 || !id.split('/').all(plain_path) {
            return Err(format!("'{id}' is not a repo id"));
        }
        let prefix = req.repo_type.cache_prefix();
        let rev = req.want.revision.as_deref().unwrap_or("main");
        if rev
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!("'{rev}' is not a revision"));
        }
        // One request where the hub lists blob ids with the revision
        // (`blobs=true`, as huggingface.co does); the tree listing where
        // it does not.
        let info = up
            .json(&format!(
                "/api/{prefix}/{id}/revision/{}?blobs=true",
                encode_path(rev).replace('/', "%2F")
            ))
            .await?;
        let commit = info["sha"]
            .as_str()
            .filter(|s| hex(s, 40))
            .ok_or_else(|| format!("{id}@{rev} has no commit"))?
            .to_owned();
        let siblings = info["siblings"].as_array().map(Vec::as_slice);
        let with_ids = siblings.is_some_and(|s| s.iter().all(|e| e["blobId"].is_string()));
        let mut remote = Vec::new();
        if let (true, Some(siblings)) = (with_ids, siblings) {
            for e in siblings {
                let path = e["rfilename"].as_str().unwrap_or_default();
                let etag = e["lfs"]["sha256"]
                    .as_str()
                    .or_else(|| e["blobId"].as_str())
                    .unwrap_or_default();
                remote.push(remote_entry(id, e, path, etag, e["size"].as_u64())?);
            }
        } else {
            let tree = up
                .json(&format!("/api/{prefix}/{id}/tree/{commit}?recursive=true"))
                .await?;
            for e in tree.as_array().map(Vec::as_slice).unwrap_or_default() {
                if e["type"] != "file" {
                    continue;
                }
                let path = e["path"].as_str().unwrap_or_default();
                let etag = e["lfs"]["oid"]
                    .as_str()
                    .or_else(|| e["oid"].as_str())
                    .unwrap_or_default();
                remote.push(remote_entry(id, e, path, etag, e["size"].as_u64())?);
            }
        }
        if !req.want.files.is_empty() {
            for f in &req.want.files {
                if !remote.iter().any(|r| &r.path == f) {
                    return Err(format!("{id}@{rev} has no file {f}"));
                }
            }
            remote.retain(|r| req.want.files.contains(&r.path));
        }
        let folder = self.repo_folder(req.repo_type, id);
        let mut report = FillReport {
            commit: commit.clone(),
            files: remote.len(),
            ..FillReport::default()
        };
        let base = match req.repo_type {
            HubRepoType::Model => String::new(),
            HubRepoType::Dataset => "/datasets".to_owned(),
            HubRepoType::Space => "/spaces".to_owned(),
        };
        // Files download side by side, a few at a time (the largest
        // first), so a repo of many small files is not a chain of round
        // trips; each is linked as soon as it is verified.
        let mut order: Vec<&Remote> = remote.iter().collect();
        order.sort_by_key(|r| std::cmp::Reverse(r.size));
        type Fetch<'a> = std::pin::Pin<
            Box<dyn Future<Output = Result<(&'a Remote, Option<u64>), String>> + Send + 'a>,
        >;
        let jobs: Vec<Fetch<'_>> = order
            .into_iter()
            .map(|r| {
                let url = format!("{base}/{id}/resolve/{commit}/{}", encode_path(&r.path));
                let (folder, commit) = (&folder, &commit);
                Box::pin(async move {
                    let got = self.fetch_blob(up, folder, &url, r).await?;
                    link(folder, commit, &r.path, &r.etag)?;
                    Ok((r, got))
                }) as Fetch<'_>
            })
            .collect();
        let mut fetches = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL_FILES);
        let mut first_error = None;
        while let Some(done) = fetches.next().await {
            match done {
                Ok((_, Some(received))) => {
                    report.bytes_downloaded += received;
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_downloaded
                        .fetch_add(received, Ordering::Relaxed);
                }
                Ok((r, None)) => {
                    report.hits += 1;
                    report.bytes_reused += r.size;
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    self.stats.bytes_reused.fetch_add(r.size, Ordering::Relaxed);
                }
                // The others go on: what they finish is kept for the
                // next fill.
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        drop(fetches);
        if let Some(e) = first_error {
            return Err(e);
        }
        let snapshot = folder.join("snapshots").join(&commit);
        std::fs::create_dir_all(&snapshot).map_err(|e| io("create", &snapshot, e))?;
        if rev != commit {
            let refs = folder.join("refs").join(rev);
            write_atomic(&refs, commit.as_bytes())?;
        }
        touch(&snapshot);
        report.elapsed = started.elapsed();
        self.stats.fills.fetch_add(1, Ordering::Relaxed);
        self.stats
            .fill_millis
            .fetch_add(report.elapsed.as_millis() as u64, Ordering::Relaxed);
        Ok(report)
    }

    /// Makes `blobs/<etag>` present; the bytes received when it was
    /// downloaded now (less than its size after a resume), `None` when it
    /// was there.
    async fn fetch_blob(
        &self,
        up: &Upstream,
        folder: &Path,
        url: &str,
        r: &Remote,
    ) -> Result<Option<u64>, String> {
        let blobs = folder.join("blobs");
        let blob = blobs.join(&r.etag);
        if blob.is_file() {
            return Ok(None);
        }
        std::fs::create_dir_all(&blobs).map_err(|e| io("create", &blobs, e))?;
        let locks = self.root.join(".locks").join(
            folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        std::fs::create_dir_all(&locks).map_err(|e| io("create", &locks, e))?;
        let lock_path = locks.join(format!("{}.lock", r.etag));
        let lock = crate::lockfile::lock(lock_path).await?;
        if blob.is_file() {
            drop(lock);
            return Ok(None);
        }
        let partial = blobs.join(format!("{}.incomplete", r.etag));
        let result = self.download(up, url, &partial, r).await;
        match result {
            Ok(received) => {
                std::fs::rename(&partial, &blob).map_err(|e| io("rename", &partial, e))?;
                drop(lock);
                Ok(Some(received))
            }
            Err(e) => {
                if e.starts_with(verify::MISMATCH) {
                    let _ = std::fs::remove_file(&partial);
                }
                drop(lock);
                Err(format!("{}: {e}", r.path))
            }
        }
    }

    /// Downloads into `partial`, from where an earlier download stopped,
    /// and checks the whole against the blob's name as the bytes arrive;
    /// the bytes received.
    async fn download(
        &self,
        up: &Upstream,
        url: &str,
        partial: &Path,
        r: &Remote,
    ) -> Result<u64, String> {
        let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if have > r.size {
            have = 0;
        }
        if have == r.size && r.size > 0 {
            return verify::check(partial, &r.etag, r.size).await.map(|()| 0);
        }
        let resp = up.get(url, Some(have)).await?;
        let status = resp.status();
        let append = match status.as_u16() {
            206 => true,
            200 => false,
            416 if have == r.size => {
                return verify::check(partial, &r.etag, r.size).await.map(|()| 0);
            }
            _ => {
                let why = resp
                    .headers()
                    .get("x-error-message")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                return Err(format!("{}{url} answered {status} {why}", up.endpoint()));
            }
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(|e| io("open", partial, e))?;
        let mut hash = verify::Hasher::new(&r.etag, r.size);
        if append {
            hash.update_from(partial).await?;
        }
        // Writing and checking happen on threads of their own, each fed
        // the chunks as they arrive (the same buffers, shared): the
        // download's path only receives, and the SHA-256 of one chunk is
        // computed while the one before is written.
        // The receiving side awaits room (it never blocks a runtime
        // thread); the writer thread blocks on its end.
        let (to_writer, mut chunks) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
        let (to_hasher, hash_chunks) = std::sync::mpsc::sync_channel::<bytes::Bytes>(64);
        let hasher = std::thread::spawn(move || {
            for chunk in hash_chunks {
                hash.update(&chunk);
            }
            hash.finish()
        });
        let path = partial.to_owned();
        // A fourth thread pushes what is written so far to the disk every
        // few tens of MB, so the fsync before the rename has little left.
        let flush_file = file.try_clone().map_err(|e| io("open", partial, e))?;
        let (flush_now, flushes) = std::sync::mpsc::sync_channel::<()>(1);
        let flusher = std::thread::spawn(move || {
            for () in flushes {
                let _ = flush_file.sync_data();
            }
        });
        let writer = std::thread::spawn(move || -> Result<(), String> {
            use std::io::Write;
            const FLUSH_EVERY: u64 = 32 << 20;
            // Chunks of 64 KiB and more (the usual on a fast link) are
            // written straight from the received buffer; smaller ones
            // are gathered first.
            let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
            let mut since_flush = 0u64;
            let written = (|| {
                while let Some(chunk) = chunks.blocking_recv() {
                    // A hasher that stopped has panicked; its join says so.
                    let _ = to_hasher.send(chunk.clone());
                    out.write_all(&chunk).map_err(|e| io("write", &path, e))?;
                    since_flush += chunk.len() as u64;
                    if since_flush >= FLUSH_EVERY {
                        since_flush = 0;
                        out.flush().map_err(|e| io("write", &path, e))?;
                        // Skipped while the last one still runs.
                        let _ = flush_now.try_send(());
                    }
                }
                Ok::<_, String>(())
            })();
            drop(to_hasher);
            drop(flush_now);
            let checked = hasher
                .join()
                .unwrap_or_else(|_| Err("the checking thread panicked".to_owned()));
            written?;
            let file = out
                .into_inner()
                .map_err(|e| io("write", &path, e.into_error()))?;
            let _ = flusher.join();
            file.sync_all().map_err(|e| io("sync", &path, e))?;
            checked
        });
        let mut body = resp.into_body();
        let mut received = 0u64;
        let mut failed = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        received += data.len() as u64;
                        if to_writer.send(data).await.is_err() {
                            // The writer stopped: its error says why.
                            break;
                        }
                    }
                }
                Err(e) => {
                    failed = Some(format!("the download of {url} broke off: {e}"));
                    break;
                }
            }
        }
        drop(to_writer);
        let written = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| format!("the writing task failed: {e}"))?
            .map_err(|_| "the writing thread panicked".to_owned())?;
        if let Some(e) = failed {
            // What arrived is kept for the next fill to resume from.
            return Err(e);
        }
        written.map(|()| received)
    }

    /// Removes the snapshots used least recently, not in `in_use` (snapshot
    /// folders), until the blobs take at most `cap` bytes; then the blobs
    /// no snapshot links to. Returns the bytes freed.
    pub fn evict(&self, cap: u64, in_use: &HashSet<PathBuf>) -> u64 {
        let Ok(repos) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let repos: Vec<PathBuf> = repos
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("models--") || n.starts_with("datasets--"))
            })
            .collect();
        let mut total: u64 = repos.iter().map(|r| blob_bytes(r)).sum();
        let mut freed = 0;
        if total <= cap {
            return 0;
        }
        let mut snapshots: Vec<(SystemTime, PathBuf, PathBuf)> = Vec::new();
        for repo in &repos {
            if let Ok(snaps) = std::fs::read_dir(repo.join("snapshots")) {
                for s in snaps.flatten() {
                    let used = s
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    snapshots.push((used, repo.clone(), s.path()));
                }
            }
        }
        snapshots.sort();
        for (_, repo, snap) in snapshots {
            if total <= cap {
                break;
            }
            if in_use.contains(&snap) {
                continue;
            }
            let _ = std::fs::remove_dir_all(&snap);
            let before = blob_bytes(&repo);
            collect_garbage(&repo);
            let after = blob_bytes(&repo);
            freed += before.saturating_sub(after);
            total = total.saturating_sub(before.saturating_sub(after));
        }
        freed
    }

    /// The counters in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let s = &self.stats;
        let mut t = String::new();
        for (name, help, v) in [
            (
                "spaceport_cache_hits_total",
                "Files a fill found in the cache.",
                &s.hits,
            ),
            (
                "spaceport_cache_misses_total",
                "Files a fill downloaded.",
                &s.misses,
            ),
            (
                "spaceport_cache_downloaded_bytes_total",
                "Bytes downloaded into the cache.",
                &s.bytes_downloaded,
            ),
            (
                "spaceport_cache_saved_bytes_total",
                "Bytes a fill found already cached (saved by sharing).",
                &s.bytes_reused,
            ),
            (
                "spaceport_cache_fills_total",
                "Fills of the cache.",
                &s.fills,
            ),
        ] {
            t.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        t.push_str(&format!(
            "# HELP spaceport_cache_fill_seconds_total Time spent filling the cache.\n# TYPE spaceport_cache_fill_seconds_total counter\nspaceport_cache_fill_seconds_total {:.3}\n",
            s.fill_millis.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        t
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("failed to {what} {}: {e}", path.display())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().ok_or("no parent folder")?;
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", &tmp, e))
}

/// Links `snapshots/<commit>/<path>` to the blob, replacing what was there.
fn link(folder: &Path, commit: &str, path: &str, etag: &str) -> Result<(), String> {
    let at = folder.join("snapshots").join(commit).join(path);
    let target = link_target(path, etag);
    if std::fs::read_link(&at).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let dir = at.parent().ok_or("no parent folder")?;
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.link",
        at.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(|e| io("link", &tmp, e))?;
    std::fs::rename(&tmp, &at).map_err(|e| io("rename", &tmp, e))
}

/// Makes `dest` hold the files of a snapshot (or of its folder `sub`) as
/// plain files, hard links to the cache's blobs (copies where the
/// filesystem cannot link): a view a container can mount anywhere, since
/// it needs no link back into the cache. Replaces what `dest` held.
///
/// Only the snapshot's own folders are walked and only links into the
/// repo's `blobs/` are taken: anything else found there (a link elsewhere
/// on the node) fails the view instead of being copied into a container.
pub fn make_view(snapshot: &Path, sub: Option<&str>, dest: &Path) -> Result<(), String> {
    let from = match sub {
        Some(s) => {
            let s = s.trim_matches('/');
            if !plain_path(s) {
                return Err(format!("'{s}' is not a folder of the repo"));
            }
            snapshot.join(s)
        }
        None => snapshot.to_owned(),
    };
    if !from.is_dir() {
        return Err(format!(
            "the repo has no folder {}",
            sub.unwrap_or_default()
        ));
    }
    let parent = dest.parent().ok_or("no parent folder")?;
    std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".view-")
        .tempdir_in(parent)
        .map_err(|e| io("create a folder in", parent, e))?;
    let blobs = snapshot
        .parent()
        .and_then(Path::parent)
        .map(|repo| repo.join("blobs"))
        .ok_or("the snapshot is not in a repo folder")?;
    let blobs = std::fs::canonicalize(&blobs).map_err(|e| io("resolve", &blobs, e))?;
    let mut stack = vec![(from.clone(), tmp.path().to_owned())];
    while let Some((src, out)) = stack.pop() {
        for e in std::fs::read_dir(&src)
            .map_err(|e| io("read", &src, e))?
            .flatten()
        {
            let p = e.path();
            let target = out.join(e.file_name());
            let meta = std::fs::symlink_metadata(&p).map_err(|e| io("read", &p, e))?;
            if meta.is_dir() {
                std::fs::create_dir(&target).map_err(|e| io("create", &target, e))?;
                stack.push((p, target));
            } else {
                let blob = std::fs::canonicalize(&p).map_err(|e| io("resolve", &p, e))?;
                let is_blob = blob.parent() == Some(blobs.as_path())
                    && std::fs::symlink_metadata(&blob).is_ok_and(|m| m.is_file());
                if !is_blob {
                    return Err(format!(
                        "failed to make a view: {} is not a file of the cache's blobs",
                        p.display()
                    ));
                }
                if std::fs::hard_link(&blob, &target).is_err() {
                    std::fs::copy(&blob, &target).map_err(|e| io("copy", &blob, e))?;
                }
            }
        }
    }
    let made = tmp.keep();
    let old = parent.join(format!(
        ".old-{}",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&old);
    if dest.exists() {
        std::fs::rename(dest, &old).map_err(|e| io("move", dest, e))?;
    }
    std::fs::rename(&made, dest).map_err(|e| io("rename", &made, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Marks a snapshot as used now (for eviction's order).
fn touch(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn blob_bytes(repo: &Path) -> u64 {
    std::fs::read_dir(repo.join("blobs"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Removes the blobs of a repo folder that no snapshot links to, and refs
/// to snapshots that are gone.
fn collect_garbage(repo: &Path) {
    let mut linked = HashSet::new();
    let mut stack = vec![repo.join("snapshots")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match std::fs::read_link(&p) {
                Ok(t) => {
                    if let Some(n) = t.file_name() {
                        linked.insert(n.to_owned());
                    }
                }
                Err(_) if p.is_dir() => stack.push(p),
                Err(_) => {}
            }
        }
    }
    if let Ok(blobs) = std::fs::read_dir(repo.join("blobs")) {
        for b in blobs.flatten() {
            let name = b.file_name();
            let partial = name.to_string_lossy().ends_with(".incomplete");
            if !partial && !linked.contains(&name) {
                let _ = std::fs::remove_file(b.path());
            }
        }
    }
    let snapshots = repo.join("snapshots");
    let mut refs = vec![repo.join("refs")];
    while let Some(d) = refs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                refs.push(p);
            } else if let Ok(commit) = std::fs::read_to_string(&p)
                && !snapshots.join(commit.trim()).is_dir()
            {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
