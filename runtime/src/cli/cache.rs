//! `spaceport cache`: fill the node's model and dataset cache from a hub
//! (the init step of Space pods on Kubernetes runs this), or shrink it.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::hubcache::{FillRequest, HubCache, Upstream};
use crate::plan::{HubRepoType, Want};

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  spaceport cache fill --cache /var/cache/spaceport/hub --endpoint http://hub:8080 alice/bert
  spaceport cache fill --endpoint https://huggingface.co --token $HF_TOKEN sentence-transformers/all-MiniLM-L6-v2@main config.json
  spaceport cache fill --dataset alice/reviews
  spaceport cache evict --max-bytes 50000000000

The cache is in the layout huggingface_hub reads (models--org--name/...):
point HF_HUB_CACHE at it and from_pretrained works offline.")]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
    /// The cache folder.
    #[arg(
        long,
        global = true,
        env = "SPACEPORT_CACHE",
        default_value = "spaceport-data/cache/hub"
    )]
    pub cache: PathBuf,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CacheCommand {
    /// Download a repo (a revision, all or some files) into the cache;
    /// what is already there is not downloaded again.
    Fill(FillArgs),
    /// Remove the snapshots used least recently (and the blobs only they
    /// use) until the cache holds at most --max-bytes.
    Evict {
        #[arg(long)]
        max_bytes: u64,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FillArgs {
    /// OWNER/NAME, optionally @REVISION (a branch, a tag or a commit).
    pub repo: String,
    /// Only these files (default: every file).
    pub files: Vec<String>,
    /// The hub to download from.
    #[arg(long, env = "HF_ENDPOINT", default_value = "http://127.0.0.1:8080")]
    pub endpoint: String,
    /// A token for private repos.
    #[arg(long, env = "HF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The repo is a dataset (default: a model).
    #[arg(long, conflicts_with = "space")]
    pub dataset: bool,
    /// The repo is a Space.
    #[arg(long)]
    pub space: bool,
    /// Also lay the revision's files out as plain files (hard links to the
    /// cache) in this folder, for mounting at any path.
    #[arg(long, value_name = "DIR")]
    pub view: Option<PathBuf>,
    /// With --view: only this folder of the repo.
    #[arg(long, requires = "view", value_name = "FOLDER")]
    pub view_path: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; the exit code.
pub fn run(args: &CacheArgs, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    let result = tokio::runtime::Runtime::new()
        .context("failed to start the async runtime")
        .and_then(|rt| rt.block_on(cache(args, out)));
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            super::EXIT_INVALID
        }
    }
}

async fn cache(args: &CacheArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let cache = HubCache::new(&args.cache);
    match &args.command {
        CacheCommand::Evict { max_bytes } => {
            let freed = cache.evict(*max_bytes, &HashSet::new());
            writeln!(out, "freed {freed} bytes")?;
        }
        CacheCommand::Fill(f) => {
            let (repo_id, revision) = match f.repo.split_once('@') {
                Some((id, rev)) => (id.to_owned(), Some(rev.to_owned())),
                None => (f.repo.clone(), None),
            };
            if repo_id.split('/').count() != 2 {
                bail!("'{}' is not OWNER/NAME[@REVISION]", f.repo);
            }
            let up = Upstream::new(&f.endpoint, f.token.clone()).map_err(anyhow::Error::msg)?;
            let req = FillRequest {
                repo_type: if f.dataset {
                    HubRepoType::Dataset
                } else if f.space {
                    HubRepoType::Space
                } else {
                    HubRepoType::Model
                },
                repo_id,
                want: Want {
                    revision,
                    files: f.files.clone(),
                },
            };
            let r = cache.fill(&up, &req).await.map_err(anyhow::Error::msg)?;
            if let Some(view) = &f.view {
                let snapshot = cache
                    .repo_folder(req.repo_type, &req.repo_id)
                    .join("snapshots")
                    .join(&r.commit);
                crate::hubcache::make_view(&snapshot, f.view_path.as_deref(), view)
                    .map_err(anyhow::Error::msg)?;
            }
            if f.json {
                let v = serde_json::json!({
                    "repo": req.repo_id,
                    "commit": r.commit,
                    "files": r.files,
                    "hits": r.hits,
                    "bytes_downloaded": r.bytes_downloaded,
                    "bytes_reused": r.bytes_reused,
                    "seconds": r.elapsed.as_secs_f64(),
                    "snapshot": cache.repo_folder(req.repo_type, &req.repo_id).join("snapshots").join(&r.commit),
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{}@{}: {} files, {} bytes downloaded, {} bytes already cached, in {:.2} s",
                    req.repo_id,
                    &r.commit[..12],
                    r.files,
                    r.bytes_downloaded,
                    r.bytes_reused,
                    r.elapsed.as_secs_f64()
                )?;
            }
        }
    }
    Ok(())
}
