//! Configuration: the proxy's settings and the routes file.
//!
//! [`ProxyConfig`] is plain data with defaults; [`ProxyConfig::validate`]
//! checks it before any port is bound. The routes file is YAML: a list of
//! [`crate::Route`] under `routes:` and, for private Spaces in standalone use,
//! accepted tokens under `tokens:`. [`FileRoutes`] is the [`RouteSource`] that
//! serves it and reloads it when asked (the binary asks on SIGHUP). This
//! module reads files; it never binds sockets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::access::{APP_COOKIE, TOKEN_COOKIE};
use crate::limits::{Limits, Timeouts};
use crate::route::{BoxFuture, Route, RouteError, RouteSource, SpaceId};
use crate::wake::WakeConfig;

/// Errors in configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The routes file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The routes file is not valid YAML of the expected shape.
    #[error("failed to parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A route is invalid.
    #[error("invalid route: {0}")]
    Route(#[from] RouteError),
    /// A setting is invalid.
    #[error("invalid setting {name}: {reason}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Everything the proxy needs besides its plug-ins.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Spaces get hosts `<owner>-<name>.<domain>`; `None` turns host routing off.
    pub domain: Option<String>,
    /// Prefix of path routes: `<prefix>/<owner>/<name>/`.
    pub path_prefix: String,
    /// Origin of the hub, which may frame Spaces that disable embedding.
    pub hub_origin: Option<String>,
    /// Cookie that opens a private Space on its own host (set by the proxy
    /// from a hub ticket; never forwarded to the app).
    pub app_cookie: String,
    /// Cookies of the hub's origin: stripped from every request to an app,
    /// and refused when an app tries to set them.
    pub hub_cookies: Vec<String>,
    /// Sandbox path-routed responses (CSP `sandbox` without
    /// `allow-same-origin`, no cookies either way): path-routed apps share
    /// one origin with each other and with whatever else serves the port.
    /// Off only where that origin holds one app and nothing else.
    pub sandbox_path_routes: bool,
    /// Trust X-Forwarded-* and Forwarded from the client (only behind a
    /// load balancer that sets them).
    pub trust_forwarded: bool,
    /// Per-request metering (off only to measure its cost).
    pub metering: bool,
    /// Secret for unique-visitor hashing; share it between replicas whose
    /// sketches are merged. `None`: a random one per process.
    pub visitor_secret: Option<Vec<u8>>,
    /// How often reports go to the analytics sink.
    pub report_interval: Duration,
    /// Size limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Waking.
    pub wake: WakeConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            domain: None,
            path_prefix: "/apps".into(),
            hub_origin: None,
            app_cookie: APP_COOKIE.into(),
            hub_cookies: vec![TOKEN_COOKIE.into()],
            sandbox_path_routes: true,
            trust_forwarded: false,
            metering: true,
            visitor_secret: None,
            report_interval: Duration::from_secs(60),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            wake: WakeConfig::default(),
        }
    }
}

impl ProxyConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason: &str| {
            Err(ConfigError::Setting {
                name,
                reason: reason.into(),
            })
        };
        if let Some(d) = &self.domain {
            let d = d.trim_matches('.');
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return bad("domain", "must be a DNS name such as spaces.example.com");
            }
        }
        if !self.path_prefix.starts_with('/')
            || self.path_prefix.len() < 2
            || self.path_prefix.ends_with('/')
            || self.path_prefix.contains(['?', '#', ' '])
        {
            return bad(
                "path_prefix",
                "must start with '/', not end with '/', and not be '/'",
            );
        }
        if let Some(o) = &self.hub_origin
            && (!(o.starts_with("http://") || o.starts_with("https://"))
                || o.contains([' ', ';', '\'']))
        {
            return bad(
                "hub_origin",
                "must be an origin such as https://hub.example.com",
            );
        }
        let plain = |c: &String| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !plain(&self.app_cookie) {
            return bad("app_cookie", "must be a plain cookie name");
        }
        if !self.hub_cookies.iter().all(plain) {
            return bad("hub_cookies", "must be plain cookie names");
        }
        if self.limits.max_header_bytes < 1024 {
            return bad("max_header_bytes", "must be at least 1024");
        }
        if self.timeouts.connect.is_zero() || self.timeouts.response_head.is_zero() {
            return bad("timeouts", "must not be zero");
        }
        if self.report_interval.is_zero() {
            return bad("report_interval", "must not be zero");
        }
        Ok(())
    }
}

/// The routes file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    /// The Spaces.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Accepted tokens per private Space.
    #[serde(default)]
    pub tokens: BTreeMap<SpaceId, Vec<String>>,
}

impl RoutesFile {
    /// Reads and validates a routes file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates YAML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: RoutesFile = serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for r in &file.routes {
            r.validate()?;
        }
        // Building a throwaway table finds duplicates and host collisions.
        crate::route::RouteTable::standalone(file.routes.clone(), Some("check.invalid"), "/apps")?;
        Ok(file)
    }

    /// The tokens as a map for [`crate::StaticTokens`].
    pub fn token_map(&self) -> HashMap<SpaceId, HashSet<String>> {
        self.tokens
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }
}

/// Serves a routes file; sends a new snapshot each time `reload` fires.
#[derive(Debug)]
pub struct FileRoutes {
    path: PathBuf,
    reload: Option<mpsc::Receiver<()>>,
    first: bool,
}

impl FileRoutes {
    /// A source for `path`; `reload` (if any) triggers a re-read.
    pub fn new(path: impl Into<PathBuf>, reload: Option<mpsc::Receiver<()>>) -> Self {
        Self {
            path: path.into(),
            reload,
            first: true,
        }
    }
}

impl RouteSource for FileRoutes {
    fn next_snapshot(&mut self) -> BoxFuture<'_, Option<Result<Vec<Route>, RouteError>>> {
        Box::pin(async move {
            if !std::mem::take(&mut self.first) {
                self.reload.as_mut()?.recv().await?;
            }
            match RoutesFile::load(&self.path) {
                Ok(f) => Some(Ok(f.routes)),
                Err(ConfigError::Route(e)) => Some(Err(e)),
                Err(e) => Some(Err(RouteError::Source(e.to_string()))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{SpaceState, Visibility};

    #[test]
    fn parses_a_routes_file() {
        let yaml = r#"
routes:
  - space: alice/demo
    upstreams: ["127.0.0.1:7860", "127.0.0.1:7861"]
    visibility: private
    disable_embedding: true
    custom_headers:
      cross-origin-opener-policy: same-origin
  - space: bob/sleepy
    state: stopped
tokens:
  alice/demo: [tok1]
"#;
        let f = RoutesFile::parse(yaml, Path::new("routes.yaml")).unwrap();
        assert_eq!(f.routes.len(), 2);
        assert_eq!(f.routes[0].visibility, Visibility::Private);
        assert_eq!(f.routes[1].state, SpaceState::Stopped);
        assert!(f.token_map()[&"alice/demo".parse().unwrap()].contains("tok1"));
    }

    #[test]
    fn bad_routes_files_are_refused_with_a_reason() {
        let unknown =
            "routes:\n  - space: a/b\n    upstreams: [\"127.0.0.1:1\"]\n    colour: red\n";
        let e = RoutesFile::parse(unknown, Path::new("r.yaml")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let header = "routes:\n  - space: a/b\n    upstreams: [\"127.0.0.1:1\"]\n    custom_headers: {x-frame-options: deny}\n";
        assert!(RoutesFile::parse(header, Path::new("r.yaml")).is_err());
        let dup = "routes:\n  - {space: a/b, upstreams: [\"127.0.0.1:1\"]}\n  - {space: a/b, upstreams: [\"127.0.0.1:2\"]}\n";
        assert!(RoutesFile::parse(dup, Path::new("r.yaml")).is_err());
        let noup = "routes:\n  - {space: a/b}\n";
        assert!(RoutesFile::parse(noup, Path::new("r.yaml")).is_err());
    }

    #[test]
    fn settings_are_validated() {
        assert!(ProxyConfig::default().validate().is_ok());
        let mut c = ProxyConfig {
            domain: Some("bad domain".into()),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c.domain = Some("spaces.example.com".into());
        c.path_prefix = "/".into();
        assert!(c.validate().is_err());
        c.path_prefix = "/apps".into();
        c.hub_origin = Some("hub.example.com".into());
        assert!(c.validate().is_err());
    }
}
