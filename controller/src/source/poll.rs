//! Watching git sources by polling: every Space with `source.git` has its
//! ref resolved with `git ls-remote` on a schedule, and when the commit
//! differs from the Space's `spaceport.dev/commit` annotation the annotation
//! is moved (the reconcile then builds it).
//!
//! [`Schedule`] is the pure part: when each Space is next due. New Spaces
//! and Spaces whose source changed are due at once; a success waits one
//! interval; a failure backs off exponentially from the interval, with
//! jitter, to at most [`MAX_BACKOFF`]. [`run`] is the I/O loop over a
//! reflector store. Neither builds anything.

use super::api::{self, annotated_commit};
use super::lsremote::{LS_REMOTE_LIMIT, resolve};
use crate::crd::{GitSource, Space};
use futures_util::StreamExt;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a failing Space waits before it is polled again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Resolutions in flight at once.
const CONCURRENCY: usize = 8;
/// Longest the loop sleeps, so new Spaces in the store are seen soon.
const TICK: Duration = Duration::from_secs(2);

/// What makes a Space's polling start over when it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub uid: Option<String>,
    pub source: GitSource,
}

#[derive(Debug, Clone)]
struct Entry {
    watched: Watched,
    due: Instant,
    failures: u32,
}

/// When each watched Space is next due. Keys are `namespace/name`.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    entries: HashMap<String, Entry>,
}

/// The wait after `failures` failures in a row (at least one), given a
/// `jitter` in [0, 1): the interval doubled per failure, capped at
/// [`MAX_BACKOFF`], then scaled into its upper half by the jitter so that
/// Spaces failing together do not retry together.
pub fn backoff(interval: Duration, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let raw = interval.saturating_mul(1u32 << doublings).min(MAX_BACKOFF);
    let jitter = jitter.clamp(0.0, 1.0);
    raw.mul_f64(0.5 + 0.5 * jitter).min(MAX_BACKOFF)
}

impl Schedule {
    pub fn new(interval: Duration) -> Self {
        Schedule {
            interval: interval.max(Duration::from_secs(1)),
            entries: HashMap::new(),
        }
    }

    /// Brings the schedule in line with the Spaces now watched: new ones
    /// and changed ones are due at `now`, gone ones are forgotten.
    pub fn sync(&mut self, watched: impl IntoIterator<Item = (String, Watched)>, now: Instant) {
        let mut seen = HashMap::new();
        for (key, w) in watched {
            let entry = match self.entries.remove(&key) {
                Some(e) if e.watched == w => e,
                _ => Entry {
                    watched: w,
                    due: now,
                    failures: 0,
                },
            };
            seen.insert(key, entry);
        }
        self.entries = seen;
    }

    /// The Spaces due at `now`, in key order.
    pub fn due(&self, now: Instant) -> Vec<String> {
        let mut due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        due
    }

    /// A poll of `key` succeeded at `now`.
    pub fn succeeded(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = 0;
            e.due = now + self.interval;
        }
    }

    /// A poll of `key` failed at `now`; `jitter` in [0, 1).
    pub fn failed(&mut self, key: &str, now: Instant, jitter: f64) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = e.failures.saturating_add(1);
            e.due = now + backoff(self.interval, e.failures, jitter);
        }
    }

    /// When the next Space is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.due).min()
    }

    /// Failures in a row of `key`.
    pub fn failures(&self, key: &str) -> Option<u32> {
        self.entries.get(key).map(|e| e.failures)
    }
}

/// The watched Spaces of a store snapshot.
pub fn watched(spaces: &[Arc<Space>]) -> Vec<(String, Watched)> {
    spaces
        .iter()
        .filter_map(|s| {
            let git = s.spec.source.git.clone()?;
            let ns = s.namespace()?;
            Some((
                format!("{ns}/{}", s.name_any()),
                Watched {
                    uid: s.uid(),
                    source: git,
                },
            ))
        })
        .collect()
}

/// A small xorshift for jitter; no cryptographic use.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter(nanos | 1)
    }

    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Polls one Space: resolves its ref and moves its annotation when the
/// commit changed. Returns the commit found.
pub async fn poll_space(client: &Client, space: &Space) -> Result<String, String> {
    let Some(git) = &space.spec.source.git else {
        return Err("the Space has no git source".into());
    };
    let ns = space.namespace().ok_or("the Space has no namespace")?;
    let name = space.name_any();
    let creds = match &git.credentials_secret {
        Some(secret) => Some(
            api::credentials(client, &ns, secret)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let commit = resolve(&git.url, &git.r#ref, creds.as_ref(), LS_REMOTE_LIMIT)
        .await
        .map_err(|e| e.to_string())?;
    if annotated_commit(space) != Some(commit.as_str()) {
        api::set_commit(client, &ns, &name, &commit)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(space = %format!("{ns}/{name}"), %commit, "new commit on {}", git.r#ref);
    }
    Ok(commit)
}

/// Polls the git sources of the Spaces in `store` forever.
pub async fn run(store: Store<Space>, client: Client, interval: Duration) {
    let mut schedule = Schedule::new(interval);
    let mut jitter = Jitter::seeded();
    loop {
        let spaces = store.state();
        schedule.sync(watched(&spaces), Instant::now());
        let due = schedule.due(Instant::now());
        let by_key: HashMap<String, Arc<Space>> = spaces
            .into_iter()
            .filter_map(|s| Some((format!("{}/{}", s.namespace()?, s.name_any()), s)))
            .collect();
        let results: Vec<(String, Result<String, String>)> =
            futures_util::stream::iter(due.into_iter().filter_map(|k| {
                let space = by_key.get(&k)?.clone();
                let client = client.clone();
                Some(async move { (k, poll_space(&client, &space).await) })
            }))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let now = Instant::now();
        for (key, result) in results {
            match result {
                Ok(_) => schedule.succeeded(&key, now),
                Err(e) => {
                    schedule.failed(&key, now, jitter.next());
                    tracing::warn!(space = %key, failures = schedule.failures(&key), "failed to poll the git source: {e}");
                }
            }
        }
        let wait = schedule
            .next_due()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(TICK)
            .min(TICK);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(url: &str, r: &str) -> Watched {
        Watched {
            uid: Some("u1".into()),
            source: GitSource {
                url: url.into(),
                r#ref: r.into(),
                credentials_secret: None,
            },
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn new_spaces_are_due_at_once_and_then_wait_an_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(MIN);
        s.sync([("ns/a".to_owned(), w("https://h/a", "main"))], t0);
        assert_eq!(s.due(t0), ["ns/a"]);
        s.succeeded("ns/a", t0);
        assert!(s.due(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(s.due(t0 + MIN), ["ns/a"]);
        assert_eq!(s.next_due(), Some(t0 + MIN));
    }

    #[test]
    fn a_changed_source_is_due_at_once_and_a_gone_space_is_forgotten() {
        let t0 = Instant::now();
        let mut s = Schedule::new(MIN);
        s.sync(
            [
                ("ns/a".to_owned(), w("https://h/a", "main")),
                ("ns/b".to_owned(), w("https://h/b", "main")),
            ],
            t0,
        );
        s.succeeded("ns/a", t0);
        s.succeeded("ns/b", t0);
        let t1 = t0 + Duration::from_secs(5);
        s.sync(
            [
                ("ns/a".to_owned(), w("https://h/a", "dev")),
                ("ns/c".to_owned(), w("https://h/c", "main")),
            ],
            t1,
        );
        assert_eq!(s.due(t1), ["ns/a", "ns/c"]);
        assert_eq!(s.failures("ns/b"), None);
        // An unchanged Space keeps its time.
        s.succeeded("ns/a", t1);
        s.sync([("ns/a".to_owned(), w("https://h/a", "dev"))], t1);
        assert!(s.due(t1).is_empty());
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_up_to_ten_minutes() {
        assert_eq!(backoff(MIN, 1, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(MIN, 1, 0.999_999).as_secs(), 59);
        assert_eq!(backoff(MIN, 2, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(MIN, 3, 0.0), Duration::from_secs(120));
        for n in 1..100 {
            for j in [0.0, 0.5, 0.99] {
                assert!(backoff(MIN, n, j) <= MAX_BACKOFF);
                assert!(backoff(MIN, n + 1, j) >= backoff(MIN, n, j));
            }
        }
        assert_eq!(backoff(MIN, 30, 0.0), Duration::from_secs(300));
        assert_eq!(backoff(Duration::from_secs(3600), 1, 1.0), MAX_BACKOFF);
    }

    #[test]
    fn a_failing_space_waits_its_backoff_and_a_success_resets_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(MIN);
        s.sync([("ns/a".to_owned(), w("https://h/a", "main"))], t0);
        s.failed("ns/a", t0, 0.0);
        s.failed("ns/a", t0, 0.0);
        s.failed("ns/a", t0, 0.0);
        assert_eq!(s.failures("ns/a"), Some(3));
        assert!(s.due(t0 + Duration::from_secs(119)).is_empty());
        assert_eq!(s.due(t0 + Duration::from_secs(120)), ["ns/a"]);
        s.succeeded("ns/a", t0);
        assert_eq!(s.failures("ns/a"), Some(0));
        assert_eq!(s.next_due(), Some(t0 + MIN));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        let mut j = Jitter::seeded();
        for _ in 0..10_000 {
            let x = j.next();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
