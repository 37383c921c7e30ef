//! Sleep and wake decisions, pure: given a Space and the time, should it go
//! to sleep, wake up, or stay as it is?
//!
//! Activity is what the proxies report in `status.lastActivity`; a proxy
//! that holds a request for a sleeping Space asks for a wake by setting the
//! `spaceport.dev/wake-requested-at` annotation. A paused Space never wakes
//! by a visit, and a Space with sleep time -1 never sleeps.

use crate::crd::Space;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use spaceport_runtime::stage::Stage;

/// Annotation a proxy sets (RFC 3339 time) to ask for a sleeping Space.
pub const WAKE_ANNOTATION: &str = "spaceport.dev/wake-requested-at";

/// What should happen to a Space now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Idle past its sleep time: scale to zero, STOPPED.
    Sleep,
    /// Asleep and asked for: scale up, APP_STARTING.
    Wake,
    Stay,
}

fn parse(ts: Option<&str>) -> Option<Timestamp> {
    ts.and_then(|t| t.parse().ok())
}

/// The sleep time in force: the spec's, else the installation's default.
pub fn sleep_seconds(space: &Space, default_seconds: i64) -> i64 {
    space.spec.sleep_time_seconds.unwrap_or(default_seconds)
}

/// Decides from the Space's stage, activity, sleep time and wake request.
pub fn transition(space: &Space, now: Timestamp, default_sleep_seconds: i64) -> Transition {
    let status = space.status.clone().unwrap_or_default();
    let stage = status.stage;
    let last_activity = parse(status.last_activity.as_deref());
    if space.spec.paused {
        return Transition::Stay;
    }
    if stage == Some(Stage::Stopped) {
        let asked = parse(space.annotations().get(WAKE_ANNOTATION).map(String::as_str));
        return match (asked, last_activity) {
            (Some(asked), Some(last)) if asked > last => Transition::Wake,
            (Some(_), None) => Transition::Wake,
            _ => Transition::Stay,
        };
    }
    let sleep = sleep_seconds(space, default_sleep_seconds);
    let serving = stage.is_some_and(|s| s.is_serving() || s == Stage::AppStarting);
    if sleep < 0 || !serving {
        return Transition::Stay;
    }
    match last_activity {
        Some(last) if now.as_second() - last.as_second() >= sleep => Transition::Sleep,
        _ => Transition::Stay,
    }
}

/// Seconds until the Space would fall asleep, to requeue in time.
pub fn seconds_until_sleep(
    space: &Space,
    now: Timestamp,
    default_sleep_seconds: i64,
) -> Option<i64> {
    let sleep = sleep_seconds(space, default_sleep_seconds);
    if sleep < 0 {
        return None;
    }
    let last = parse(space.status.as_ref()?.last_activity.as_deref())?;
    Some((last.as_second() + sleep - now.as_second()).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{SpaceSpec, SpaceStatus};

    fn space(stage: Stage, last: &str, sleep: Option<i64>) -> Space {
        let mut s = Space::new(
            "demo",
            SpaceSpec {
                sleep_time_seconds: sleep,
                ..SpaceSpec::default()
            },
        );
        s.status = Some(SpaceStatus {
            stage: Some(stage),
            last_activity: Some(last.into()),
            ..SpaceStatus::default()
        });
        s
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn an_idle_running_space_sleeps_after_its_sleep_time() {
        let s = space(Stage::Running, "2026-01-01T00:00:00Z", Some(3600));
        assert_eq!(
            transition(&s, at("2026-01-01T00:59:59Z"), 172_800),
            Transition::Stay
        );
        assert_eq!(
            transition(&s, at("2026-01-01T01:00:00Z"), 172_800),
            Transition::Sleep
        );
        assert_eq!(
            seconds_until_sleep(&s, at("2026-01-01T00:30:00Z"), 0),
            Some(1800)
        );
    }

    #[test]
    fn minus_one_never_sleeps_and_paused_never_wakes() {
        let s = space(Stage::Running, "2020-01-01T00:00:00Z", Some(-1));
        assert_eq!(
            transition(&s, at("2026-01-01T00:00:00Z"), 60),
            Transition::Stay
        );
        let mut p = space(Stage::Stopped, "2020-01-01T00:00:00Z", None);
        p.spec.paused = true;
        p.annotations_mut()
            .insert(WAKE_ANNOTATION.into(), "2026-01-01T00:00:00Z".into());
        assert_eq!(
            transition(&p, at("2026-01-01T00:00:01Z"), 60),
            Transition::Stay
        );
    }

    #[test]
    fn a_wake_request_newer_than_the_last_activity_wakes() {
        let mut s = space(Stage::Stopped, "2026-01-01T00:00:00Z", Some(60));
        assert_eq!(
            transition(&s, at("2026-01-02T00:00:00Z"), 60),
            Transition::Stay
        );
        s.annotations_mut()
            .insert(WAKE_ANNOTATION.into(), "2025-12-31T00:00:00Z".into());
        assert_eq!(
            transition(&s, at("2026-01-02T00:00:00Z"), 60),
            Transition::Stay,
            "an old request"
        );
        s.annotations_mut()
            .insert(WAKE_ANNOTATION.into(), "2026-01-01T12:00:00Z".into());
        assert_eq!(
            transition(&s, at("2026-01-02T00:00:00Z"), 60),
            Transition::Wake
        );
    }
}
