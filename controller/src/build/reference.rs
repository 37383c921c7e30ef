//! Image references and registry credentials, the pure part of pushing:
//! a Space's image is `<registry>/<namespace>-<name>:<first 12 of commit>`,
//! checked and lowercased into a reference the Docker API accepts; the
//! credentials for the registry come from a docker `config.json`.

use base64::Engine;
use bollard::auth::DockerCredentials;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Checks a registry prefix (`host[:port][/path...]`) and returns it
/// lowercased, without a trailing slash.
pub fn check_registry(prefix: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "the registry '{}' {why}: write it as host[:port]/path, such as registry.example:5000/spaces",
            prefix.escape_default()
        )
    };
    let p = prefix.trim().trim_end_matches('/').to_ascii_lowercase();
    if p.contains("://") {
        return Err(bad("has a scheme"));
    }
    if p.is_empty() || p.len() > 200 {
        return Err(bad("is empty or too long"));
    }
    let mut parts = p.split('/');
    let host = parts.next().unwrap_or("");
    let (name, port) = match host.rsplit_once(':') {
        Some((n, port)) => (n, Some(port)),
        None => (host, None),
    };
    if name.is_empty()
        || !name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        || port.is_some_and(|p| p.parse::<u16>().is_err())
    {
        return Err(bad("has no valid host"));
    }
    for part in parts {
        if !is_path_component(part) {
            return Err(bad(&format!("has an invalid path part '{part}'")));
        }
    }
    Ok(p)
}

/// A repository path component by the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut run = String::new();
    for &c in b {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !matches!(run.as_str(), "" | "." | "_" | "__") && !run.bytes().all(|x| x == b'-') {
                return false;
            }
            run.clear();
        } else if matches!(c, b'.' | b'_' | b'-') {
            run.push(c as char);
        } else {
            return false;
        }
    }
    true
}

/// The repository name of a Space: `<namespace>-<name>`, lowercased, with
/// anything a reference cannot hold turned into `-`.
pub fn repository_name(namespace: &str, name: &str) -> String {
    let raw = format!("{namespace}-{name}").to_ascii_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "space".into() } else { out }
}

/// The image reference of a Space at a commit.
pub fn image_reference(
    registry: &str,
    namespace: &str,
    name: &str,
    commit: &str,
) -> Result<(String, String), String> {
    let tag: String = commit.chars().take(12).collect();
    if tag.len() < 7 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{}' is not a commit id", commit.escape_default()));
    }
    let repo = format!("{registry}/{}", repository_name(namespace, name));
    if repo.len() + 1 + tag.len() > 255 {
        return Err(format!(
            "the image name {repo} is longer than 255 characters"
        ));
    }
    Ok((repo, tag.to_ascii_lowercase()))
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The host (with port) a registry prefix or a config.json key names.
fn registry_host(s: &str) -> String {
    let s = s
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_ascii_lowercase()
}

/// The credentials a docker `config.json` holds for the registry of
/// `registry` (a prefix such as `registry.example:5000/spaces`); `Ok(None)`
/// when it holds none for that host.
pub fn credentials_for(
    config_json: &str,
    registry: &str,
) -> Result<Option<DockerCredentials>, String> {
    let file: ConfigFile = serde_json::from_str(config_json)
        .map_err(|e| format!("the registry auth file is not a docker config.json: {e}"))?;
    let host = registry_host(registry);
    let Some(entry) = file
        .auths
        .iter()
        .find(|(k, _)| registry_host(k) == host)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
    if let Some(auth) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                format!(
                    "the auth of {host} in the registry auth file is not base64 of user:password"
                )
            })?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            format!("the auth of {host} in the registry auth file is not user:password")
        })?;
        username = Some(u.to_owned());
        password = Some(p.to_owned());
    }
    Ok(Some(DockerCredentials {
        username,
        password,
        identitytoken: entry.identitytoken.clone(),
        serveraddress: Some(host),
        ..DockerCredentials::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn the_reference_is_registry_namespace_name_and_twelve_hex() {
        let reg = check_registry("Registry.Example:5000/Spaces/").unwrap();
        assert_eq!(reg, "registry.example:5000/spaces");
        let (repo, tag) = image_reference(&reg, "Team", "My.App", C).unwrap();
        assert_eq!(repo, "registry.example:5000/spaces/team-my-app");
        assert_eq!(tag, "0123456789ab");
        assert_eq!(repository_name("a", "--b__c"), "a-b-c");
        assert!(image_reference(&reg, "a", "b", "HEAD").is_err());
        assert!(image_reference(&reg, "a", "b", "--force").is_err());
    }

    #[test]
    fn bad_registries_are_refused_with_the_reason() {
        assert!(check_registry("localhost:5000").is_ok());
        assert!(check_registry("127.0.0.1:1/x").is_ok());
        for bad in [
            "",
            "https://registry.example",
            "registry.example:99999",
            "registry.example/UPPER CASE",
            "registry.example/a..b",
            "registry.example/-a",
            "reg@istry",
            ":5000/x",
        ] {
            assert!(check_registry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_come_from_the_config_entry_of_the_registry_host() {
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"b3RoZXI6eA=="},
            "registry.example:5000":{"auth":"Ym9iOnM6M2NyZXQ="}}}"#;
        let c = credentials_for(json, "registry.example:5000/spaces")
            .unwrap()
            .unwrap();
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_deref(), Some("s:3cret"));
        assert_eq!(c.serveraddress.as_deref(), Some("registry.example:5000"));
        assert!(credentials_for(json, "elsewhere:5000/x").unwrap().is_none());
        assert!(credentials_for("not json", "x").is_err());
        let bad = r#"{"auths":{"r:1":{"auth":"!!"}}}"#;
        assert!(
            credentials_for(bad, "r:1/x")
                .unwrap_err()
                .contains("base64")
        );
    }
}
