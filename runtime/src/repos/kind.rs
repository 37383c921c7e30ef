//! The three kinds of repo the hub keeps, and where each lives in the URL
//! space and on disk.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A repo's type, spelled as the Hub API spells it (`"space"`, `"model"`,
/// `"dataset"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Space,
    Model,
    Dataset,
}

impl RepoKind {
    pub const ALL: [RepoKind; 3] = [RepoKind::Space, RepoKind::Model, RepoKind::Dataset];

    /// The singular name used in API bodies (`type` of /api/repos/create).
    pub fn as_str(self) -> &'static str {
        match self {
            RepoKind::Space => "space",
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }

    /// The plural used in API paths: `/api/spaces/...`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Space => "spaces",
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// The prefix of the repo's web and git URL: `/spaces/o/n`, `/o/n`,
    /// `/datasets/o/n`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Space => "/spaces",
            RepoKind::Model => "",
            RepoKind::Dataset => "/datasets",
        }
    }
}

impl fmt::Display for RepoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RepoKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "space" | "spaces" => Ok(RepoKind::Space),
            "model" | "models" => Ok(RepoKind::Model),
            "dataset" | "datasets" => Ok(RepoKind::Dataset),
            other => Err(format!(
                "unknown repo type '{other}' (expected space, model or dataset)"
            )),
        }
    }
}
