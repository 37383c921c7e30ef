//! Balancing across a Space's replicas: least outstanding requests, sticky
//! sessions by cookie, ejection with backoff.
//!
//! Gradio's queue and Streamlit's session live in one process, so a visitor
//! who has been sent to a replica keeps going there (the cookie names the
//! replica by a stable hash of its address, the same on every proxy replica).
//! A replica that refuses connections is ejected for a backoff that doubles
//! per consecutive failure (1 s up to 30 s); when every replica is ejected the
//! one whose backoff ends first is tried anyway rather than failing outright.
//! This module only picks; it never opens connections.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::uri::Authority;

/// Name of the cookie that pins a visitor to a replica.
pub const STICKY_COOKIE: &str = "spaceport_replica";

const BASE_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// FNV-1a: stable across processes and versions, which the cookie needs.
fn stable_id(authority: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in authority.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// One replica.
#[derive(Debug)]
pub struct Endpoint {
    authority: Authority,
    id: String,
    outstanding: AtomicU32,
    failures: AtomicU32,
    ejected_until_ms: AtomicU64,
}

impl Endpoint {
    fn new(authority: Authority) -> Self {
        Self {
            id: stable_id(authority.as_str()),
            authority,
            outstanding: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The sticky-cookie value naming this replica.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Requests sent and not yet finished.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    fn ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// Records a failure to connect: ejects with a doubling backoff. Returns
    /// the backoff.
    pub fn failed(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = BASE_BACKOFF.saturating_mul(1 << n.min(5)).min(MAX_BACKOFF);
        let until = now_ms() + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until_ms.store(until, Ordering::Relaxed);
        backoff
    }

    /// Records a successful exchange: clears the ejection.
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// Holds one outstanding request on an endpoint until dropped.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
}

impl Lease {
    /// The chosen replica.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replicas of one Space. Their set can change (a new container port, a
/// scaled Deployment) while requests are in flight; counters of replicas that
/// stay are kept.
#[derive(Debug)]
pub struct Balancer {
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
}

impl Balancer {
    /// A balancer over `authorities`.
    pub fn new(authorities: &[Authority]) -> Self {
        let b = Self {
            endpoints: ArcSwap::from_pointee(Vec::new()),
        };
        b.update(authorities);
        b
    }

    /// Replaces the replica set, keeping state of replicas present in both.
    pub fn update(&self, authorities: &[Authority]) {
        let old = self.endpoints.load();
        if old.len() == authorities.len()
            && old.iter().zip(authorities).all(|(e, a)| &e.authority == a)
        {
            return;
        }
        let next = authorities
            .iter()
            .map(|a| {
                old.iter()
                    .find(|e| &e.authority == a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(a.clone())))
            })
            .collect();
        self.endpoints.store(Arc::new(next));
    }

    /// The current replicas.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// Picks a replica: the sticky one if it is healthy, else the healthy one
    /// with the fewest outstanding requests (skipping `avoid`), else the one
    /// whose ejection ends first.
    pub fn pick(&self, sticky: Option<&str>, avoid: Option<&Endpoint>) -> Option<Lease> {
        let eps = self.endpoints.load();
        let now = now_ms();
        let chosen = if eps.len() == 1 {
            eps[0].clone()
        } else {
            let usable = |e: &&Arc<Endpoint>| {
                !e.ejected(now) && avoid.is_none_or(|a| !std::ptr::eq(a, e.as_ref()))
            };
            let sticky_ep = sticky.and_then(|id| eps.iter().filter(usable).find(|e| e.id == id));
            match sticky_ep {
                Some(e) => e.clone(),
                None => match eps.iter().filter(usable).min_by_key(|e| e.outstanding()) {
                    Some(e) => e.clone(),
                    None => eps
                        .iter()
                        .min_by_key(|e| e.ejected_until_ms.load(Ordering::Relaxed))?
                        .clone(),
                },
            }
        };
        chosen.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Lease { endpoint: chosen })
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.endpoints.load().len()
    }

    /// Whether there is no replica.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the sticky cookie from a request's Cookie headers.
pub fn sticky_from(headers: &http::HeaderMap) -> Option<&str> {
    crate::access::cookie(headers, STICKY_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths(list: &[&str]) -> Vec<Authority> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn picks_least_outstanding() {
        let b = Balancer::new(&auths(&["127.0.0.1:1", "127.0.0.1:2"]));
        let first = b.pick(None, None).unwrap();
        let second = b.pick(None, None).unwrap();
        assert_ne!(first.endpoint().authority(), second.endpoint().authority());
        drop(first);
        let third = b.pick(None, None).unwrap();
        assert_eq!(third.endpoint().outstanding(), 1);
        assert_ne!(third.endpoint().authority(), second.endpoint().authority());
    }

    #[test]
    fn sticky_cookie_wins_over_load_until_ejected() {
        let b = Balancer::new(&auths(&["127.0.0.1:1", "127.0.0.1:2"]));
        let eps = b.endpoints();
        let target = eps[1].id().to_owned();
        let _busy: Vec<_> = (0..3)
            .map(|_| b.pick(Some(&target), None).unwrap())
            .collect();
        assert_eq!(eps[1].outstanding(), 3);
        eps[1].failed();
        let other = b.pick(Some(&target), None).unwrap();
        assert_eq!(other.endpoint().authority(), eps[0].authority());
    }

    #[test]
    fn all_ejected_still_tries_the_earliest_and_backoff_doubles() {
        let b = Balancer::new(&auths(&["127.0.0.1:1", "127.0.0.1:2"]));
        let eps = b.endpoints();
        assert_eq!(eps[0].failed(), Duration::from_secs(1));
        assert_eq!(eps[0].failed(), Duration::from_secs(2));
        eps[1].failed();
        let lease = b.pick(None, None).unwrap();
        assert_eq!(lease.endpoint().authority(), eps[1].authority());
        eps[0].succeeded();
        assert!(!eps[0].ejected(now_ms()));
    }

    #[test]
    fn update_keeps_counters_of_surviving_replicas() {
        let b = Balancer::new(&auths(&["127.0.0.1:1"]));
        let _lease = b.pick(None, None).unwrap();
        b.update(&auths(&["127.0.0.1:2", "127.0.0.1:1"]));
        assert_eq!(b.endpoints()[1].outstanding(), 1);
        assert_eq!(b.endpoints()[0].outstanding(), 0);
    }
}
