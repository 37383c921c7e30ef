//! What the plan is made from, besides the configuration: the repo's file
//! list (and the few files it reads), the Space's identity and owner-set
//! settings, and the installation's settings. Plain data; no I/O.

use crate::config::{Invalid, RepoId, StorageTier};
use crate::hardware::DEFAULT_FLAVOR;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Files the plan reads the contents of; every other file is only listed.
pub const PLAN_READS: &[&str] = &[
    "requirements.txt",
    "pre-requirements.txt",
    "packages.txt",
    "Dockerfile",
];

/// The files of a repo at one commit: every path, and the text of the few
/// files the plan reads ([`PLAN_READS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoFiles {
    paths: BTreeSet<String>,
    texts: BTreeMap<String, String>,
}

impl RepoFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file (a '/'-separated path relative to the repo root), with its
    /// text when the plan reads it.
    pub fn insert(&mut self, path: impl Into<String>, text: Option<String>) {
        let path = path.into();
        if let Some(text) = text {
            self.texts.insert(path.clone(), text);
        }
        self.paths.insert(path);
    }

    /// Builder form of [`insert`](Self::insert), handy in tests.
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.insert(path, Some(text.to_owned()));
        self
    }

    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    pub fn text(&self, path: &str) -> Option<&str> {
        self.texts.get(path).map(String::as_str)
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// A Space's id: `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpaceId {
    owner: String,
    name: String,
}

impl SpaceId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let id = RepoId::parse(s)?;
        match id.namespace() {
            Some(owner) => Ok(SpaceId {
                owner: owner.to_owned(),
                name: id.name().to_owned(),
            }),
            None => Err(Invalid {
                message: format!("'{s}' has no owner"),
                hint: Some("a Space id looks like 'owner/name'".into()),
            }),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same id as the proxy's routes know it.
    pub fn to_route_id(&self) -> spaceport_proxy::route::SpaceId {
        // Every repo-id-valid pair is a valid route id (the proxy's rules are
        // the looser ones).
        spaceport_proxy::route::SpaceId::new(&self.owner, &self.name)
            .expect("a valid Space id is a valid route id")
    }

    /// The Space's own host label, as Hugging Face forms it: `owner-name`,
    /// lowercase, with `_` and `.` as `-`. The proxy routes by it, so the
    /// proxy's rule is the one used.
    pub fn host_label(&self) -> String {
        self.to_route_id().host_label()
    }

    /// `owner-name.domain`.
    pub fn host(&self, domain: &str) -> String {
        format!("{}.{}", self.host_label(), domain)
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl TryFrom<String> for SpaceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SpaceId::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<SpaceId> for String {
    fn from(id: SpaceId) -> String {
        id.to_string()
    }
}

/// What the hub knows of a Space besides its repo: identity and the
/// settings its owner made through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceContext {
    pub id: SpaceId,
    /// The commit being planned, when known.
    pub commit: Option<String>,
    pub creator_user_id: Option<String>,
    /// The flavor the owner requested; `None` means the default flavor.
    pub hardware: Option<String>,
    /// Variables: environment at run time, build args for docker builds.
    pub variables: BTreeMap<String, String>,
    /// Names of the secrets set for the Space (values never reach the plan).
    pub secret_names: BTreeSet<String>,
    /// Persistent storage mounted at /data, when the owner bought some.
    pub storage: Option<StorageTier>,
    /// Repos the owner mounted through the API (`set_space_volumes`).
    pub volumes: Vec<ApiVolume>,
}

/// A hub repo mounted at a path of the owner's choice, as the Hub's
/// `PUT /api/spaces/{id}/volumes` sets it. Always read-only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiVolume {
    /// `model`, `dataset` or `space`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repo id.
    pub source: String,
    #[serde(rename = "mountPath")]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A folder of the repo to mount instead of all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl ApiVolume {
    /// Checks a volume as the API receives it; the words for a 400.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.kind.as_str(), "model" | "dataset" | "space") {
            return Err(format!(
                "volumes of type '{}' are not supported here: mount a model, a dataset or a space",
                self.kind
            ));
        }
        RepoId::parse(&self.source)
            .map_err(|_| format!("'{}' is not a repo id (owner/name)", self.source))?;
        let m = &self.mount_path;
        let plain = |p: &str| p.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        if !m.starts_with('/')
            || m.len() < 2
            || !plain(&m[1..])
            || m.contains(['\0', '\n', ':', ','])
        {
            return Err(format!(
                "mountPath '{m}' must be an absolute path such as /models/bert, without '..'"
            ));
        }
        const SYSTEM: &[&str] = &[
            "/bin",
            "/boot",
            "/dev",
            "/etc",
            "/lib",
            "/lib64",
            "/proc",
            "/run",
            "/sbin",
            "/sys",
            "/usr",
            "/var",
            "/tmp",
            "/home/user/app",
            "/data",
        ];
        if SYSTEM
            .iter()
            .any(|s| m == s || m.starts_with(&format!("{s}/")))
        {
            return Err(format!(
                "mountPath '{m}' would hide a folder the Space needs"
            ));
        }
        if let Some(p) = &self.path
            && !p.is_empty()
            && !plain(p.trim_matches('/'))
        {
            return Err(format!(
                "path '{p}' must be a folder of the repo, without '..'"
            ));
        }
        if let Some(r) = &self.revision
            && (r.is_empty()
                || r.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || r.contains(['\0', ' ']))
        {
            return Err(format!("revision '{r}' is not a branch, a tag or a commit"));
        }
        Ok(())
    }
}

impl SpaceContext {
    pub fn new(id: SpaceId) -> Self {
        SpaceContext {
            id,
            commit: None,
            creator_user_id: None,
            hardware: None,
            variables: BTreeMap::new(),
            secret_names: BTreeSet::new(),
            storage: None,
            volumes: Vec::new(),
        }
    }
}

/// Settings of the installation that shape every plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// Spaces are served at `owner-name.<domain>`.
    pub domain: String,
    /// The hub's URL as a Space reaches it: HF_ENDPOINT and the OpenID issuer.
    pub hub_url: String,
    /// Base image for gradio and streamlit; `{python_version}` is replaced.
    pub python_base_image: String,
    /// Image in which a static Space's `app_build_command` runs.
    pub static_build_image: String,
    /// gradio pinned when a Space names no sdk_version.
    pub default_gradio_version: String,
    /// streamlit pinned when a Space names no sdk_version.
    pub default_streamlit_version: String,
    /// Flavor for Spaces whose owner requested none.
    pub default_flavor: String,
    /// Give a Space its README's `suggested_hardware` when its owner
    /// requested nothing. Off by default, as on Hugging Face: anyone can
    /// write a README, so a GPU should be granted, not claimed.
    pub honor_suggested_hardware: bool,
    /// Set HF_HUB_OFFLINE=1 so Spaces load models only from their mounts.
    pub hub_offline: bool,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            domain: "localhost".into(),
            hub_url: "http://localhost:8080".into(),
            python_base_image: "python:{python_version}".into(),
            static_build_image: "node:20".into(),
            default_gradio_version: "6.31.0".into(),
            default_streamlit_version: "1.67.0".into(),
            default_flavor: DEFAULT_FLAVOR.into(),
            honor_suggested_hardware: false,
            hub_offline: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_ids_need_an_owner_and_form_hf_hosts() {
        let id = SpaceId::parse("My_Org/cool.app").unwrap();
        assert_eq!(id.host_label(), "my-org-cool-app");
        assert_eq!(
            id.host("spaces.example.org"),
            "my-org-cool-app.spaces.example.org"
        );
        assert!(SpaceId::parse("lonely").is_err());
        assert!(SpaceId::parse("a/../b").is_err());
    }
}
