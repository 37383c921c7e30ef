//! Which commit a branch or tag of a remote is at, by `git ls-remote`: the
//! ref checked first (git's ref-name rules, never an option), only the
//! Space's own ref asked for, and the answer read exactly (a branch before a
//! tag of the same name, an annotated tag peeled to its commit).
//!
//! It answers one question and keeps no state; the poller decides when to ask.

use super::git::{Git, GitError, redact};
use crate::build::GitCredentials;
use std::time::Duration;

/// Longest one `ls-remote` may take.
pub const LS_REMOTE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("'{0}' is not a branch or tag name")]
    BadRef(String),
    #[error("{url} has no branch or tag '{reference}'")]
    NotFound { url: String, reference: String },
}

/// Checks a branch or tag name (short, `refs/heads/x` or `refs/tags/x`)
/// by git's ref-name rules.
pub fn check_ref(reference: &str) -> Result<(), ResolveError> {
    let bad = || ResolveError::BadRef(reference.escape_default().to_string());
    let ok = !reference.is_empty()
        && reference.len() <= 255
        && !reference.starts_with(['-', '/'])
        && !reference.ends_with(['/', '.'])
        && !reference.ends_with(".lock")
        && !reference.contains("..")
        && !reference.contains("@{")
        && !reference.contains("//")
        && reference != "@"
        && !reference
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
        && reference.split('/').all(|part| !part.starts_with('.'));
    if ok { Ok(()) } else { Err(bad()) }
}

/// True for a full commit id (SHA-1 or SHA-256, lowercase hex).
pub fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The full ref names a short name may stand for, most preferred first.
pub fn candidates(reference: &str) -> Vec<String> {
    if reference.starts_with("refs/") {
        vec![reference.to_owned()]
    } else {
        vec![
            format!("refs/heads/{reference}"),
            format!("refs/tags/{reference}"),
        ]
    }
}

/// Picks the commit of `reference` out of `git ls-remote` output
/// (`<id>\t<name>` lines).
pub fn pick(output: &str, reference: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = output
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(id, _)| is_commit_id(id))
        .collect();
    let find = |name: &str| {
        lines
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| (*id).to_owned())
    };
    candidates(reference).iter().find_map(|full| {
        if full.starts_with("refs/tags/") {
            find(&format!("{full}^{{}}")).or_else(|| find(full))
        } else {
            find(full)
        }
    })
}

/// Resolves `reference` (a branch, a tag, or a full commit id, which is
/// its own answer) of the remote at `url` to a commit id.
pub async fn resolve(
    url: &str,
    reference: &str,
    credentials: Option<&GitCredentials>,
    limit: Duration,
) -> Result<String, ResolveError> {
    let git = Git::new(url, credentials)?;
    if is_commit_id(reference) {
        return Ok(reference.to_owned());
    }
    check_ref(reference)?;
    let mut patterns = Vec::new();
    for full in candidates(reference) {
        if full.starts_with("refs/tags/") {
            patterns.push(format!("{full}^{{}}"));
        }
        patterns.push(full);
    }
    let mut args = vec!["ls-remote", "--"];
    args.push(url);
    args.extend(patterns.iter().map(String::as_str));
    let output = git.run("ls-remote", None, &args, limit).await?;
    pick(&output, reference).ok_or_else(|| ResolveError::NotFound {
        url: redact(url),
        reference: reference.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    #[test]
    fn a_branch_wins_over_a_tag_and_annotated_tags_are_peeled() {
        let out = format!(
            "{A}\trefs/tags/v1\n{B}\trefs/tags/v1^{{}}\n{C}\trefs/heads/main\n{A}\trefs/heads/x/refs/heads/main\n"
        );
        assert_eq!(pick(&out, "main").as_deref(), Some(C));
        assert_eq!(pick(&out, "refs/heads/main").as_deref(), Some(C));
        assert_eq!(pick(&out, "v1").as_deref(), Some(B));
        assert_eq!(pick(&out, "refs/tags/v1").as_deref(), Some(B));
        assert_eq!(pick(&out, "dev"), None);
    }

    #[test]
    fn ref_names_follow_gits_rules() {
        for ok in ["main", "release/1.2", "refs/tags/v1.0", "feature_x-2"] {
            assert!(check_ref(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-main",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a:b",
            "a~1",
            "x^",
            "a/",
            "/a",
            "a.lock",
            "a@{1}",
            "@",
            ".hidden",
            "a/.b",
            "a\nb",
            "a*",
            "a//b",
        ] {
            assert!(check_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commit_ids_are_full_lowercase_hex() {
        assert!(is_commit_id(A));
        assert!(!is_commit_id(&A[..12]));
        assert!(!is_commit_id(&A.to_uppercase().replace('1', "A")));
    }
}
