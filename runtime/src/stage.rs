//! The lifecycle stage of a Space, named exactly as `huggingface_hub`'s
//! `SpaceStage` enum names them, so the client reads spaceport's answers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a Space is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// The app file named by the config is not in the repo.
    NoAppFile,
    /// The README's configuration is invalid.
    ConfigError,
    /// The image is being built; nothing serves yet.
    Building,
    /// The last build failed.
    BuildError,
    /// The app answers.
    Running,
    /// The old version serves while a new one builds.
    RunningBuilding,
    /// The app exited, or did not answer within its startup timeout.
    RuntimeError,
    /// The Space is being removed.
    Deleting,
    /// Asleep: wakes on the next visit.
    Stopped,
    /// Paused by its owner: wakes only by an owner's restart.
    Paused,
    /// The container runs but the app does not answer yet.
    AppStarting,
    /// The old version serves while the new one starts.
    RunningAppStarting,
}

impl Stage {
    pub const ALL: [Stage; 12] = [
        Stage::NoAppFile,
        Stage::ConfigError,
        Stage::Building,
        Stage::BuildError,
        Stage::Running,
        Stage::RunningBuilding,
        Stage::RuntimeError,
        Stage::Deleting,
        Stage::Stopped,
        Stage::Paused,
        Stage::AppStarting,
        Stage::RunningAppStarting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::NoAppFile => "NO_APP_FILE",
            Stage::ConfigError => "CONFIG_ERROR",
            Stage::Building => "BUILDING",
            Stage::BuildError => "BUILD_ERROR",
            Stage::Running => "RUNNING",
            Stage::RunningBuilding => "RUNNING_BUILDING",
            Stage::RuntimeError => "RUNTIME_ERROR",
            Stage::Deleting => "DELETING",
            Stage::Stopped => "STOPPED",
            Stage::Paused => "PAUSED",
            Stage::AppStarting => "APP_STARTING",
            Stage::RunningAppStarting => "RUNNING_APP_STARTING",
        }
    }

    /// A version of the app answers visitors in this stage.
    pub fn is_serving(self) -> bool {
        matches!(
            self,
            Stage::Running | Stage::RunningBuilding | Stage::RunningAppStarting
        )
    }

    /// A visit starts the Space (it is asleep, not paused or broken).
    pub fn wakes_on_visit(self) -> bool {
        self == Stage::Stopped
    }

    /// Only a new push, or a config change, moves a Space out of this stage.
    pub fn needs_a_fix(self) -> bool {
        matches!(
            self,
            Stage::NoAppFile | Stage::ConfigError | Stage::BuildError | Stage::RuntimeError
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a Space stage"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact strings of huggingface_hub's SpaceStage enum.
    const CLIENT_NAMES: [&str; 12] = [
        "NO_APP_FILE",
        "CONFIG_ERROR",
        "BUILDING",
        "BUILD_ERROR",
        "RUNNING",
        "RUNNING_BUILDING",
        "RUNTIME_ERROR",
        "DELETING",
        "STOPPED",
        "PAUSED",
        "APP_STARTING",
        "RUNNING_APP_STARTING",
    ];

    #[test]
    fn names_match_the_client_enum_in_serde_display_and_parse() {
        for (stage, name) in Stage::ALL.into_iter().zip(CLIENT_NAMES) {
            assert_eq!(stage.to_string(), name);
            assert_eq!(
                serde_json::to_string(&stage).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(name.parse::<Stage>().unwrap(), stage);
        }
        assert!("running".parse::<Stage>().is_err());
    }

    #[test]
    fn only_sleeping_spaces_wake_on_a_visit() {
        let waking: Vec<_> = Stage::ALL
            .into_iter()
            .filter(|s| s.wakes_on_visit())
            .collect();
        assert_eq!(waking, [Stage::Stopped]);
        assert!(!Stage::Paused.wakes_on_visit());
    }
}
