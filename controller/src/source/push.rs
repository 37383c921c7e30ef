//! Push notifications, the pure part: checking a webhook's HMAC-SHA256
//! signature (GitHub's `sha256=<hex>` header, Gitea's bare hex) in constant
//! time, reading a push event, and telling whether it concerns a Space's
//! git source (same repository once URLs are normalized, same ref).
//!
//! No I/O here; [`super::webhook`] serves it.

use crate::crd::GitSource;
use ring::hmac;
use serde::Deserialize;

/// Who sent a webhook, which decides the signature header's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `X-Hub-Signature-256: sha256=<hex>`.
    GitHub,
    /// `X-Gitea-Signature: <hex>`.
    Gitea,
    /// Spaceport's own hook: GitHub's header and payload.
    Spaceport,
}

impl Provider {
    /// The header holding the signature.
    pub fn signature_header(self) -> &'static str {
        match self {
            Provider::GitHub | Provider::Spaceport => "x-hub-signature-256",
            Provider::Gitea => "x-gitea-signature",
        }
    }

    /// The header naming the event, when the provider sends one.
    pub fn event_header(self) -> &'static str {
        match self {
            Provider::GitHub => "x-github-event",
            Provider::Gitea => "x-gitea-event",
            Provider::Spaceport => "x-spaceport-event",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no {0} header")]
    Missing(&'static str),
    #[error("the signature must be HMAC-SHA256 written as sha256=<hex>")]
    Algorithm,
    #[error("the signature is not hexadecimal")]
    NotHex,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the signature header's value, if any) against `body`.
pub fn verify_signature(
    provider: Provider,
    secret: &[u8],
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing(provider.signature_header()))?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::NotHex)?;
    let hex = match provider {
        Provider::GitHub | Provider::Spaceport => header
            .trim()
            .strip_prefix("sha256=")
            .ok_or(SignatureError::Algorithm)?,
        Provider::Gitea => header
            .trim()
            .strip_prefix("sha256=")
            .unwrap_or(header.trim()),
    };
    let tag = decode_hex(hex).ok_or(SignatureError::NotHex)?;
    if tag.len() != 32 {
        return Err(SignatureError::Algorithm);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).map_err(|_| SignatureError::Mismatch)
}

/// The signature header value GitHub would send: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A push event, as GitHub, Gitea and spaceport send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/main`, `refs/tags/v1`.
    pub r#ref: String,
    /// The commit the ref is at now.
    pub after: String,
    /// Every URL the payload gives for the repository, normalized.
    pub repository: Vec<String>,
}

impl Push {
    /// A branch or tag deletion (the ref now points at nothing).
    pub fn is_deletion(&self) -> bool {
        self.after.bytes().all(|b| b == b'0')
    }

    /// Whether the push moved the ref `source` follows in its repository.
    pub fn concerns(&self, source: &GitSource) -> bool {
        let Some(url) = normalize_url(&source.url) else {
            return false;
        };
        self.repository.contains(&url) && ref_matches(&source.r#ref, &self.r#ref)
    }
}

#[derive(Deserialize)]
struct RawPush {
    r#ref: Option<String>,
    after: Option<String>,
    repository: Option<RawRepo>,
}

#[derive(Deserialize)]
struct RawRepo {
    clone_url: Option<String>,
    html_url: Option<String>,
    ssh_url: Option<String>,
    git_url: Option<String>,
}

/// Reads a push event; the error says what is wrong, for a 400.
pub fn parse_push(body: &[u8]) -> Result<Push, String> {
    let raw: RawPush =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a push event: {e}"))?;
    let r#ref = raw.r#ref.ok_or("the push event has no 'ref'")?;
    if !r#ref.starts_with("refs/") || super::lsremote::check_ref(&r#ref).is_err() {
        return Err(format!(
            "'{}' is not a full ref name",
            r#ref.escape_default()
        ));
    }
    let after = raw.after.ok_or("the push event has no 'after'")?;
    if !super::lsremote::is_commit_id(&after) {
        return Err(format!("'{}' is not a commit id", after.escape_default()));
    }
    let repo = raw.repository.ok_or("the push event has no 'repository'")?;
    let mut repository: Vec<String> = [repo.clone_url, repo.html_url, repo.ssh_url, repo.git_url]
        .into_iter()
        .flatten()
        .filter_map(|u| normalize_url(&u))
        .collect();
    repository.sort();
    repository.dedup();
    if repository.is_empty() {
        return Err("the push event names no repository URL".into());
    }
    Ok(Push {
        r#ref,
        after,
        repository,
    })
}

/// Whether a Space's `ref` (short, or full) is the pushed full ref.
pub fn ref_matches(space_ref: &str, pushed: &str) -> bool {
    if space_ref.starts_with("refs/") {
        return space_ref == pushed;
    }
    pushed
        .strip_prefix("refs/heads/")
        .or_else(|| pushed.strip_prefix("refs/tags/"))
        == Some(space_ref)
}

/// A repository URL reduced to `host/path`: any scheme (https, http, ssh,
/// git, and ssh's `user@host:path`; `file:///p` gives `file:/p`), user and
/// port dropped, host and path
/// lowercased, trailing `/` and `.git` removed. Two URLs of one repository
/// give the same string. `None` for what is not a remote URL.
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let (authority, path) = match url.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" | "ssh" | "git" => rest.split_once('/').unwrap_or((rest, "")),
            // A repository on the controller's own disk (a hub beside it).
            "file" => ("file:", rest.trim_start_matches("localhost")),
            _ => return None,
        },
        None => {
            let (host, path) = url.split_once(':')?;
            if host.contains('/') || path.starts_with(':') {
                return None;
            }
            (host, path)
        }
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.strip_prefix('[') {
        _ if host == "file:" => host.to_owned(),
        // An IPv6 literal keeps its brackets, loses its port.
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host.split(':').next().unwrap_or(host).to_owned(),
    };
    let mut path = path.trim_matches('/').to_owned();
    while let Some(p) = path.strip_suffix(".git").or_else(|| path.strip_suffix('/')) {
        path = p.to_owned();
    }
    if host.is_empty() || host == "[]" || path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repository_written_every_way_normalizes_to_one_string() {
        let want = Some("github.com/org/repo".to_owned());
        for url in [
            "https://github.com/org/repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "HTTPS://GitHub.COM/Org/Repo.git/",
            "git@github.com:org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "ssh://git@github.com:22/org/repo",
            "git://github.com/org/repo.git",
            "https://user@github.com:443/org/repo",
        ] {
            assert_eq!(normalize_url(url), want, "{url}");
        }
        assert_eq!(
            normalize_url("https://[::1]:3000/a/b.git").as_deref(),
            Some("[::1]/a/b")
        );
        assert_eq!(
            normalize_url("file:///srv/Repos/a.git/").as_deref(),
            Some("file:/srv/repos/a")
        );
        assert_eq!(normalize_url("file:///"), None);
        for bad in [
            "",
            "ftp://host/a",
            "https://host",
            "https://host/",
            "/srv/repo",
            "a b",
            "ext::sh",
        ] {
            assert_eq!(normalize_url(bad), None, "{bad:?}");
        }
        assert_ne!(
            normalize_url("https://github.com/org/repo"),
            normalize_url("https://github.com/org/repo2")
        );
    }

    #[test]
    fn short_refs_match_branches_and_tags_full_refs_match_exactly() {
        assert!(ref_matches("main", "refs/heads/main"));
        assert!(ref_matches("v1", "refs/tags/v1"));
        assert!(ref_matches("refs/heads/main", "refs/heads/main"));
        assert!(!ref_matches("refs/heads/main", "refs/tags/main"));
        assert!(!ref_matches("main", "refs/heads/main2"));
        assert!(!ref_matches("main", "refs/notes/main"));
        assert!(!ref_matches("heads/main", "refs/heads/main"));
    }

    const SECRET: &[u8] = b"s3cret";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    #[test]
    fn a_good_signature_passes_for_each_provider() {
        let gh = sign(SECRET, BODY);
        assert_eq!(
            verify_signature(Provider::GitHub, SECRET, BODY, Some(gh.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify_signature(Provider::Spaceport, SECRET, BODY, Some(gh.as_bytes())),
            Ok(())
        );
        let bare = gh.trim_start_matches("sha256=");
        assert_eq!(
            verify_signature(Provider::Gitea, SECRET, BODY, Some(bare.as_bytes())),
            Ok(())
        );
        // GitHub's known example: secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn bad_missing_and_other_algorithm_signatures_fail() {
        let gh = sign(SECRET, BODY);
        let other_body = br#"{"ref":"refs/heads/evil"}"#;
        assert_eq!(
            verify_signature(Provider::GitHub, SECRET, other_body, Some(gh.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Provider::GitHub, b"other", BODY, Some(gh.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Provider::GitHub, SECRET, BODY, None),
            Err(SignatureError::Missing("x-hub-signature-256"))
        );
        let sha1 = gh.replace("sha256=", "sha1=");
        assert_eq!(
            verify_signature(Provider::GitHub, SECRET, BODY, Some(sha1.as_bytes())),
            Err(SignatureError::Algorithm)
        );
        // A 20-byte (SHA-1 sized) tag is another algorithm, too.
        let short = format!("sha256={}", "ab".repeat(20));
        assert_eq!(
            verify_signature(Provider::GitHub, SECRET, BODY, Some(short.as_bytes())),
            Err(SignatureError::Algorithm)
        );
        assert_eq!(
            verify_signature(Provider::Gitea, SECRET, BODY, Some(b"zz")),
            Err(SignatureError::NotHex)
        );
        assert_eq!(
            verify_signature(Provider::Gitea, SECRET, BODY, Some(b"")),
            Err(SignatureError::Algorithm)
        );
    }

    fn event(r: &str, after: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": r,
            "after": after,
            "repository": {
                "clone_url": "https://git.example/org/app.git",
                "html_url": "https://git.example/org/app",
                "ssh_url": "git@git.example:org/app.git",
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn push_events_are_read_and_matched_against_sources() {
        let c = "a".repeat(40);
        let push = parse_push(&event("refs/heads/main", &c)).unwrap();
        assert_eq!(push.repository, ["git.example/org/app"]);
        let src = |url: &str, r: &str| GitSource {
            url: url.into(),
            r#ref: r.into(),
            credentials_secret: None,
        };
        assert!(push.concerns(&src("git@git.example:org/app", "main")));
        assert!(push.concerns(&src("https://git.example/org/app.git", "refs/heads/main")));
        assert!(!push.concerns(&src("https://git.example/org/app.git", "dev")));
        assert!(!push.concerns(&src("https://git.example/org/other", "main")));
        assert!(!push.is_deletion());
        assert!(
            parse_push(&event("refs/heads/main", &"0".repeat(40)))
                .unwrap()
                .is_deletion()
        );
    }

    #[test]
    fn malformed_push_events_say_what_is_wrong() {
        let c = "a".repeat(40);
        let err = |b: &[u8]| parse_push(b).unwrap_err();
        assert!(err(b"not json").contains("not a push event"));
        assert!(err(b"{}").contains("no 'ref'"));
        assert!(err(&event("main", &c)).contains("not a full ref"));
        assert!(err(&event("refs/heads/main", "HEAD")).contains("not a commit id"));
        assert!(err(&event("refs/heads/a..b", &c)).contains("not a full ref"));
        let no_repo = format!(r#"{{"ref":"refs/heads/main","after":"{c}"}}"#);
        assert!(err(no_repo.as_bytes()).contains("no 'repository'"));
        let bad_urls = format!(
            r#"{{"ref":"refs/heads/main","after":"{c}","repository":{{"clone_url":"ext::sh"}}}}"#
        );
        assert!(err(bad_urls.as_bytes()).contains("no repository URL"));
    }
}
