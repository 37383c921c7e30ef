//! Leader election with a coordination.k8s.io Lease, so several controller
//! replicas can run and exactly one reconciles, polls repos and builds.
//!
//! [`decide`] is the pure rule: take a free or expired lease, renew our own,
//! otherwise follow. [`Elector`] applies it against the API: it reads the
//! Lease, creates it when missing and replaces it with the resourceVersion
//! it read, so two candidates racing for an expired lease cannot both win
//! (the loser gets 409 Conflict and follows).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::sync::watch;

/// What to do with the lease now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this spec: we take the lease (or renew it).
    Hold(LeaseSpec),
    /// Someone else holds it until the given time.
    Follow { holder: String, until: Timestamp },
}

/// The lease rule. `current` is the lease as read (None: no lease yet).
pub fn decide(
    current: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> Decision {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let holder = current
        .and_then(|l| l.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let renewed = current
        .and_then(|l| l.renew_time.as_ref())
        .map(|t| t.0)
        .or_else(|| current.and_then(|l| l.acquire_time.as_ref()).map(|t| t.0));
    let held_for = current
        .and_then(|l| l.lease_duration_seconds)
        .unwrap_or(seconds);
    let until = renewed.map(|r| r + SignedDuration::from_secs(i64::from(held_for)));
    let transitions = current.and_then(|l| l.lease_transitions).unwrap_or(0);
    match (holder, until) {
        (Some(h), Some(until)) if h != me && until > now => Decision::Follow { holder: h, until },
        (Some(h), _) if h == me => Decision::Hold(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(seconds),
            acquire_time: current.and_then(|l| l.acquire_time.clone()),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
        _ => Decision::Hold(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if current.is_some() {
                transitions + 1
            } else {
                0
            }),
            ..LeaseSpec::default()
        }),
    }
}

/// Where the lease lives and how long it holds.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    pub duration: Duration,
}

/// Runs the election; `is_leader` says where we stand.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    tx: watch::Sender<bool>,
}

impl Elector {
    pub fn new(client: Client, settings: LeaseSettings) -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let api = Api::namespaced(client, &settings.namespace);
        (Elector { api, settings, tx }, rx)
    }

    /// One round: read, decide, write. Returns whether we hold the lease.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let s = &self.settings;
        let now = Timestamp::now();
        let current = self.api.get_opt(&s.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &s.identity,
            now,
            s.duration,
        );
        let Decision::Hold(spec) = decision else {
            return Ok(false);
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                let name = lease.name_any();
                self.api
                    .replace(&name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Another replica wrote first: it leads.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs rounds forever: every third of the lease while leading, more
    /// slowly while following. Losing the lease (or failing to renew it
    /// before it runs out) flips `is_leader` to false.
    pub async fn run(self) {
        let renew = self.settings.duration / 3;
        let mut last_held: Option<tokio::time::Instant> = None;
        loop {
            let leading = match self.round().await {
                Ok(held) => {
                    last_held = held.then(tokio::time::Instant::now);
                    held
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to renew the leader lease");
                    last_held.is_some_and(|t| t.elapsed() < self.settings.duration)
                }
            };
            if *self.tx.borrow() != leading {
                tracing::info!(leading, identity = %self.settings.identity, "leadership changed");
            }
            self.tx.send_replace(leading);
            tokio::time::sleep(if leading {
                renew
            } else {
                renew.max(Duration::from_secs(2))
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held(by: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(at("2026-01-01T00:00:00Z"))),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_missing_lease_is_taken() {
        let Decision::Hold(spec) = decide(None, "me", at("2026-01-01T00:00:00Z"), D) else {
            panic!("not taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn a_live_lease_of_another_is_followed() {
        let lease = held("other", "2026-01-01T00:00:10Z");
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:20Z"), D),
            Decision::Follow {
                holder: "other".into(),
                until: at("2026-01-01T00:00:25Z")
            }
        );
    }

    #[test]
    fn an_expired_lease_is_taken_and_counts_a_transition() {
        let lease = held("other", "2026-01-01T00:00:10Z");
        let Decision::Hold(spec) = decide(Some(&lease), "me", at("2026-01-01T00:00:26Z"), D) else {
            panic!("not taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(
            spec.acquire_time,
            Some(MicroTime(at("2026-01-01T00:00:26Z")))
        );
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_its_acquire_time() {
        let lease = held("me", "2026-01-01T00:00:10Z");
        let Decision::Hold(spec) = decide(Some(&lease), "me", at("2026-01-01T00:00:14Z"), D) else {
            panic!("not renewed");
        };
        assert_eq!(spec.renew_time, Some(MicroTime(at("2026-01-01T00:00:14Z"))));
        assert_eq!(spec.acquire_time, lease.acquire_time);
        assert_eq!(spec.lease_transitions, Some(2));
    }
}
