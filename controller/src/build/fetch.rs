//! Fetching exactly one commit of a Space's git source into a fresh
//! folder: a shallow fetch of the commit where the server allows fetching
//! by id, else a fetch of its branches and tags; then a detached checkout.
//! Credentials, URL checks and time limits are [`crate::source::git`]'s.

use super::{BuildError, GitLocation};
use crate::source::git::{Git, redact};
use crate::source::lsremote::is_commit_id;
use spaceport_runtime::build::LogBook;
use std::path::Path;
use std::time::{Duration, Instant};

/// Fetches `commit` of `source` into `dir` (an empty folder) and checks
/// it out, writing what it does to `log`.
pub async fn fetch_commit(
    source: &GitLocation,
    commit: &str,
    dir: &Path,
    limit: Duration,
    log: &LogBook,
) -> Result<(), BuildError> {
    if !is_commit_id(commit) {
        return Err(BuildError::Failed(format!(
            "'{}' is not a full commit id",
            commit.escape_default()
        )));
    }
    let git = Git::new(&source.url, source.credentials.as_ref())
        .map_err(|e| BuildError::Failed(e.to_string()))?;
    let url = redact(&source.url);
    let started = Instant::now();
    log.push(format!("fetching {commit} from {url}"));
    let failed = |e: crate::source::git::GitError| BuildError::Failed(e.to_string());
    git.run("init", Some(dir), &["init", "-q", "."], limit)
        .await
        .map_err(failed)?;
    let shallow = git
        .run(
            "fetch",
            Some(dir),
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--depth",
                "1",
                "--",
                &source.url,
                commit,
            ],
            limit,
        )
        .await;
    if let Err(e) = shallow {
        // Servers that do not serve commits by id still serve refs: take
        // them all and look for the commit among them.
        log.push(format!(
            "the server did not serve the commit by id ({e}); fetching its branches and tags"
        ));
        git.run(
            "fetch",
            Some(dir),
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--",
                &source.url,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
            limit,
        )
        .await
        .map_err(failed)?;
    }
    let object = format!("{commit}^{{commit}}");
    if git
        .run("cat-file", Some(dir), &["cat-file", "-e", &object], limit)
        .await
        .is_err()
    {
        return Err(BuildError::Failed(format!(
            "the commit {commit} is not in {url} (was it force-pushed away?)"
        )));
    }
    git.run(
        "checkout",
        Some(dir),
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            commit,
        ],
        limit,
    )
    .await
    .map_err(failed)?;
    log.push(format!(
        "fetched in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
