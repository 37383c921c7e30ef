//! The models and datasets a Space uses, made present in the node's cache
//! before it starts: each repo its README names (`models`, `datasets`,
//! `preload_from_hub`) is resolved to a commit and filled from this hub,
//! with the Space's own access, never wider: a public repo, or a private
//! one its owner may read. The runner mounts the repos' folders read-only
//! as the Space's `HF_HUB_CACHE`.

use std::collections::HashSet;
use std::path::PathBuf;

use super::Hub;
use crate::build::LogBook;
use crate::engine::ContainerEngine;
use crate::hubcache::{FillRequest, Upstream};
use crate::plan::{HubRepoType, RunSpec, SpaceId, VolumeSource};
use crate::repos::RepoKind;
use crate::state::{Owner, Repo, TokenScope};

/// What a Space mounts from the cache, and what filling it took at its
/// last start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mounted {
    pub snapshots: Vec<PathBuf>,
    pub files: usize,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
    pub seconds: f64,
}

/// An API volume's view: its index among the Space's volumes and the
/// folder of the repo it shows.
type View = (usize, Option<String>);

impl<E: ContainerEngine> Hub<E> {
    /// Whether the Space `space` may read `repo`: public, or private and
    /// readable by the Space's owner (a user's own or their orgs' repos;
    /// an org Space: the org's repos).
    fn space_may_read(&self, space: &Repo, repo: &Repo) -> Result<bool, String> {
        if !repo.private {
            return Ok(true);
        }
        let store = self.store();
        match store.owner(space.id.owner()).map_err(|e| e.to_string())? {
            Some(Owner::User(user)) => store
                .can_read(&user, repo.id.owner())
                .map_err(|e| e.to_string()),
            Some(Owner::Org(org)) => Ok(org.name == repo.id.owner()),
            None => Ok(false),
        }
    }

    /// Fills the cache with every hub repo of `run`, logging to `log`.
    /// Returns the snapshot folders the Space mounts.
    pub(crate) async fn fill_volumes(
        &self,
        space: &Repo,
        run: &RunSpec,
        log: &LogBook,
    ) -> Result<Vec<PathBuf>, String> {
        // Each fill, and the API volume it makes a view for (if any).
        let mut requests: Vec<(FillRequest, Option<View>)> = Vec::new();
        let mut remote = Vec::new();
        let mut private = false;
        for v in &run.volumes {
            let (repo_type, repo_id, wants, view) = match &v.source {
                VolumeSource::HubRepo {
                    repo_type,
                    repo_id,
                    wants,
                } => (*repo_type, repo_id, wants.clone(), None),
                VolumeSource::HubView {
                    repo_type,
                    repo_id,
                    revision,
                    path,
                    index,
                } => (
                    *repo_type,
                    repo_id,
                    vec![crate::plan::Want {
                        revision: revision.clone(),
                        files: Vec::new(),
                    }],
                    Some((*index, path.clone())),
                ),
                VolumeSource::Persistent { .. } => continue,
            };
            let kind = match repo_type {
                HubRepoType::Model => RepoKind::Model,
                HubRepoType::Dataset => RepoKind::Dataset,
                HubRepoType::Space => RepoKind::Space,
            };
            let id = SpaceId::parse(repo_id).map_err(|e| format!("{repo_id}: {e}"))?;
            let missing = || {
                format!(
                    "the {} {repo_id} is not on this hub (or not readable by {}){}",
                    repo_type.cache_prefix().trim_end_matches('s'),
                    space.id,
                    if self.config().models_upstream.is_none() {
                        "; an operator can name a hub to fetch it from with --models-upstream"
                    } else {
                        ""
                    }
                )
            };
            let fill = |want: &crate::plan::Want| {
                (
                    FillRequest {
                        repo_type,
                        repo_id: repo_id.clone(),
                        want: want.clone(),
                    },
                    view.clone(),
                )
            };
            match self.store().repo(kind, &id).map_err(|e| e.to_string())? {
                Some(repo) => {
                    if !self.space_may_read(space, &repo)? {
                        return Err(missing());
                    }
                    private |= repo.private;
                    requests.extend(wants.iter().map(fill));
                }
                None if self.config().models_upstream.is_some() => {
                    remote.extend(wants.iter().map(fill));
                }
                None => return Err(missing()),
            }
        }
        if requests.is_empty() && remote.is_empty() {
            return Ok(Vec::new());
        }
        // The fill reads through this hub's own download API; a private
        // repo with a short-lived read token of the Space's creator (the
        // rule above has already said the Space may read it).
        let token = if private {
            let (info, value) = self
                .store()
                .create_token(&space.created_by, "model-cache-fill", TokenScope::Read)
                .map_err(|e| e.to_string())?;
            Some((info, value))
        } else {
            None
        };
        let endpoint = format!("http://127.0.0.1:{}", self.config().port);
        let local = Upstream::new(&endpoint, token.as_ref().map(|(_, v)| v.clone()))?;
        let upstream = match &self.config().models_upstream {
            Some((url, token)) => Some(Upstream::new(url, token.clone())?),
            None => None,
        };
        let mut snapshots = Vec::new();
        let mut mounted = Mounted::default();
        let mut result = Ok(());
        let all = requests.iter().map(|r| (&local, r)).chain(
            remote
                .iter()
                .filter_map(|r| upstream.as_ref().map(|u| (u, r))),
        );
        for (up, (req, view)) in all {
            let what = match &req.want.revision {
                Some(r) => format!("{}@{r}", req.repo_id),
                None => req.repo_id.clone(),
            };
            log.push(format!(
                "--> Filling the model cache: {what} (from {})",
                up.endpoint()
            ));
            match self.inner.cache.fill(up, req).await {
                Ok(r) => {
                    let snapshot = self
                        .inner
                        .cache
                        .repo_folder(req.repo_type, &req.repo_id)
                        .join("snapshots")
                        .join(&r.commit);
                    if let Some((index, path)) = view {
                        let root = self
                            .inner
                            .cache
                            .root()
                            .parent()
                            .unwrap_or(self.inner.cache.root());
                        let dest = crate::run::spec::view_folder(root, &space.id, *index);
                        if let Err(e) =
                            crate::hubcache::make_view(&snapshot, path.as_deref(), &dest)
                        {
                            result = Err(format!("failed to mount {what}: {e}"));
                            break;
                        }
                    }
                    log.push(format!(
                        "    {} files at {}: {} bytes downloaded, {} bytes already cached, {:.2} s",
                        r.files,
                        &r.commit[..12],
                        r.bytes_downloaded,
                        r.bytes_reused,
                        r.elapsed.as_secs_f64()
                    ));
                    mounted.files += r.files;
                    mounted.bytes_downloaded += r.bytes_downloaded;
                    mounted.bytes_reused += r.bytes_reused;
                    mounted.seconds += r.elapsed.as_secs_f64();
                    snapshots.push(snapshot);
                }
                Err(e) => {
                    result = Err(format!("failed to fetch {what}: {e}"));
                    break;
                }
            }
        }
        if let Some((info, _)) = token {
            let _ = self.store().revoke_token(&space.created_by, info.id);
        }
        result?;
        mounted.snapshots = snapshots.clone();
        self.note_mounts(&space.id, mounted);
        Ok(snapshots)
    }

    /// Bytes of a repo in the node's cache; `None` when it has no blob there.
    pub(crate) fn cached_bytes(&self, repo_type: HubRepoType, repo_id: &str) -> Option<u64> {
        let blobs = self
            .inner
            .cache
            .repo_folder(repo_type, repo_id)
            .join("blobs");
        let total: u64 = std::fs::read_dir(blobs)
            .ok()?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".incomplete"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        (total > 0).then_some(total)
    }

    /// Remembers what a Space mounts, and trims the cache to its cap
    /// without touching what any Space mounts.
    fn note_mounts(&self, space: &SpaceId, mounted: Mounted) {
        let in_use: HashSet<PathBuf> = {
            let mut mounts = self.inner.mounts.lock().unwrap_or_else(|p| p.into_inner());
            mounts.insert(space.clone(), mounted);
            mounts
                .values()
                .flat_map(|m| m.snapshots.iter().cloned())
                .collect()
        };
        if let Some(cap) = self.config().cache_max_bytes {
            let freed = self.inner.cache.evict(cap, &in_use);
            if freed > 0 {
                tracing::info!(freed, "evicted unused snapshots from the model cache");
            }
        }
    }

    /// What the Space's last fill did, if it mounts anything.
    pub fn last_fill(&self, space: &SpaceId) -> Option<Mounted> {
        self.inner
            .mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(space)
            .cloned()
    }

    /// Per Space, what filling its cache took at its last start.
    pub(crate) fn mounts_metrics_text(&self) -> String {
        let mounts = self.inner.mounts.lock().unwrap_or_else(|p| p.into_inner());
        if mounts.is_empty() {
            return String::new();
        }
        let mut rows: Vec<_> = mounts.iter().collect();
        rows.sort_by_key(|(space, _)| space.to_string());
        let mut t = String::new();
        for (name, help, get) in [
            (
                "spaceport_space_cache_fill_seconds",
                "Time the Space's last start spent filling its models and datasets.",
                (|m: &Mounted| m.seconds) as fn(&Mounted) -> f64,
            ),
            (
                "spaceport_space_cache_downloaded_bytes",
                "Bytes the Space's last start downloaded into the cache.",
                |m: &Mounted| m.bytes_downloaded as f64,
            ),
            (
                "spaceport_space_cache_reused_bytes",
                "Bytes the Space's last start found already cached.",
                |m: &Mounted| m.bytes_reused as f64,
            ),
        ] {
            t.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (space, m) in &rows {
                t.push_str(&format!("{name}{{space=\"{space}\"}} {}\n", get(m)));
            }
        }
        t
    }
}
