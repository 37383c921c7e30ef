//! The status conditions of a Space, in the Kubernetes convention, derived
//! from its stage and its latest build (pure). A condition keeps its
//! `lastTransitionTime` while its status stays the same.
//!
//! - `Ready`: the app answers (RUNNING or RUNNING_BUILDING).
//! - `ConfigValid`: the configuration and the spec are usable.
//! - `Built`: the latest build succeeded (Unknown while one runs or none has).

use crate::crd::{BuildResult, BuildStatus, SpaceCondition};
use spaceport_runtime::stage::Stage;

fn condition(kind: &str, ok: Option<bool>, reason: &str, message: Option<&str>) -> SpaceCondition {
    SpaceCondition {
        kind: kind.to_owned(),
        status: match ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
        .to_owned(),
        reason: Some(reason.to_owned()),
        message: message.map(str::to_owned),
        last_transition_time: None,
    }
}

/// The conditions for `stage` and `build`, keeping the transition times of
/// `previous` where a condition's status did not change.
pub fn conditions(
    previous: &[SpaceCondition],
    stage: Stage,
    message: Option<&str>,
    build: Option<&BuildStatus>,
    now: &str,
) -> Vec<SpaceCondition> {
    let ready = matches!(stage, Stage::Running | Stage::RunningBuilding);
    let ready_reason = match stage {
        Stage::Running | Stage::RunningBuilding => "Serving",
        Stage::Stopped => "Sleeping",
        Stage::Paused => "Paused",
        Stage::Building => "Building",
        Stage::AppStarting | Stage::RunningAppStarting => "Starting",
        _ => "Failed",
    };
    let config_ok = stage != Stage::ConfigError;
    let built = match build.map(|b| b.result) {
        Some(BuildResult::Succeeded) => condition("Built", Some(true), "Succeeded", None),
        Some(BuildResult::Running) => condition("Built", None, "Building", None),
        Some(BuildResult::Failed) => condition(
            "Built",
            Some(false),
            "BuildFailed",
            build.and_then(|b| b.message.as_deref()),
        ),
        Some(BuildResult::ConfigError) => condition(
            "Built",
            Some(false),
            "InvalidReadme",
            build.and_then(|b| b.message.as_deref()),
        ),
        None => condition("Built", None, "NoBuild", None),
    };
    let mut out = vec![
        condition("Ready", Some(ready), ready_reason, message),
        condition(
            "ConfigValid",
            Some(config_ok),
            if config_ok { "Valid" } else { "Invalid" },
            (!config_ok).then_some(message).flatten(),
        ),
        built,
    ];
    for c in &mut out {
        c.last_transition_time = previous
            .iter()
            .find(|p| p.kind == c.kind && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone())
            .or_else(|| Some(now.to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(c: &'a [SpaceCondition], kind: &str) -> &'a SpaceCondition {
        c.iter().find(|c| c.kind == kind).unwrap()
    }

    #[test]
    fn conditions_follow_the_stage_and_keep_their_transition_time() {
        let building = BuildStatus {
            commit: "c".into(),
            result: BuildResult::Running,
            message: None,
            started: None,
            finished: None,
        };
        let first = conditions(
            &[],
            Stage::Building,
            Some("building c"),
            Some(&building),
            "t1",
        );
        assert_eq!(get(&first, "Ready").status, "False");
        assert_eq!(get(&first, "Built").status, "Unknown");
        assert_eq!(get(&first, "ConfigValid").status, "True");

        let done = BuildStatus {
            result: BuildResult::Succeeded,
            ..building
        };
        let second = conditions(&first, Stage::Running, None, Some(&done), "t2");
        assert_eq!(get(&second, "Ready").status, "True");
        assert_eq!(
            get(&second, "Ready").last_transition_time.as_deref(),
            Some("t2")
        );
        assert_eq!(
            get(&second, "ConfigValid").last_transition_time.as_deref(),
            Some("t1"),
            "unchanged, so its time stays"
        );
        let bad = conditions(
            &second,
            Stage::ConfigError,
            Some("README.md:3:1: bad"),
            Some(&done),
            "t3",
        );
        let config = get(&bad, "ConfigValid");
        assert_eq!(
            (config.status.as_str(), config.message.as_deref()),
            ("False", Some("README.md:3:1: bad"))
        );
    }
}
