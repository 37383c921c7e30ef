//! Failed-authentication limits per client address, against guessing
//! tokens. Each unknown token or session, and each failed sign-in, counts
//! against the address it came from; once an address has
//! [`MAX_FAILURES`] failures within [`WINDOW`] of its first one, its requests
//! that carry credentials are answered 429 until that window ends, without
//! the credentials being looked at. Requests from other addresses, and
//! valid requests before the limit, cost one map lookup and never wait.
//!
//! The client is the connection's peer, or, when the hub is told to trust
//! forwarded headers (it runs behind a load balancer or ingress, whose
//! address every request would otherwise share), the last hop of
//! `X-Forwarded-For`, as the proxy meters it. IPv6 clients usually hold a
//! whole /64, so their failures count per /64.
//! The table is capped at [`MAX_ADDRESSES`]: when full, finished windows are
//! dropped first, then the oldest window. Time is passed in, so the logic is
//! tested with a made-up clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Failures an address may have within a window before it is held off.
pub const MAX_FAILURES: u32 = 10;
/// How long a window lasts, from an address's first failure in it.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses tracked at once.
pub const MAX_ADDRESSES: usize = 10_000;

/// Marks a response to credentials that failed, for the layer that counts
/// failures per address (handlers that know the answer mark it; the layer
/// knows the address).
#[derive(Debug, Clone, Copy)]
pub struct AuthFailed;

/// The client address of a request, found once by the hub's layer and
/// kept in the request's extensions for the handlers that count failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client of a request: the peer, or with `trust` the last hop of
/// `X-Forwarded-For` (the one the trusted balancer appended).
pub fn client_addr(headers: &http::HeaderMap, peer: IpAddr, trust: bool) -> IpAddr {
    if trust
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|s| s.trim().parse().ok())
    {
        return last;
    }
    peer
}

/// What failures are counted by: the address, or the /64 of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(u128);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(u128::from(u32::from(v4))),
                None => ClientKey(((u128::from(v6) >> 64) << 64) | (1 << 63)),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The failure counts; see the [module docs](self).
#[derive(Debug)]
pub struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    trust_forwarded: AtomicBool,
    table: Mutex<HashMap<ClientKey, Window>>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        Self::new(MAX_FAILURES, WINDOW, MAX_ADDRESSES)
    }
}

impl AuthLimiter {
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> Self {
        AuthLimiter {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            trust_forwarded: AtomicBool::new(false),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether clients are told apart by `X-Forwarded-For` (set once at
    /// start, only behind a balancer that appends to it).
    pub fn set_trust_forwarded(&self, trust: bool) {
        self.trust_forwarded.store(trust, Ordering::Relaxed);
    }

    pub fn trusts_forwarded(&self) -> bool {
        self.trust_forwarded.load(Ordering::Relaxed)
    }

    /// None when `ip` may present credentials now; else how long until it
    /// may (at least a second, for `Retry-After`).
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let w = table.get(&ClientKey::of(ip))?;
        let ends = w.started + self.window;
        if w.failures >= self.max_failures && now < ends {
            Some((ends - now).max(Duration::from_secs(1)))
        } else {
            None
        }
    }

    /// Counts a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let key = ClientKey::of(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = table.get_mut(&key) {
            if now < w.started + self.window {
                w.failures = w.failures.saturating_add(1);
            } else {
                *w = Window {
                    started: now,
                    failures: 1,
                };
            }
            return;
        }
        if table.len() >= self.capacity {
            let window = self.window;
            table.retain(|_, w| now < w.started + window);
        }
        if table.len() >= self.capacity
            && let Some(oldest) = table.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(
            key,
            Window {
                started: now,
                failures: 1,
            },
        );
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ten_failures_in_a_minute_hold_off_that_address_until_the_window_ends() {
        let l = AuthLimiter::default();
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..MAX_FAILURES {
            assert_eq!(l.blocked(a, t0), None, "not yet after {i} failures");
            l.failed(a, t0 + Duration::from_secs(u64::from(i)));
        }
        let at = t0 + Duration::from_secs(20);
        assert_eq!(l.blocked(a, at), Some(Duration::from_secs(40)));
        assert_eq!(l.blocked(ip("203.0.113.8"), at), None, "others are free");
        assert_eq!(
            l.blocked(a, t0 + WINDOW - Duration::from_millis(10)),
            Some(Duration::from_secs(1)),
            "Retry-After is never zero"
        );
        assert_eq!(l.blocked(a, t0 + WINDOW), None, "the window passed");
        // The next failure opens a new window with one failure.
        l.failed(a, t0 + WINDOW);
        assert_eq!(l.blocked(a, t0 + WINDOW), None);
    }

    #[test]
    fn failures_spread_over_more_than_a_window_never_block() {
        let l = AuthLimiter::default();
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        for i in 0..30u64 {
            let t = t0 + Duration::from_secs(i * 7);
            assert_eq!(l.blocked(a, t), None, "at {i}");
            l.failed(a, t);
        }
    }

    #[test]
    fn forwarded_addresses_count_only_when_trusted() {
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 192.0.2.9".parse().unwrap());
        let peer = ip("10.1.1.1");
        assert_eq!(client_addr(&h, peer, false), peer);
        assert_eq!(client_addr(&h, peer, true), ip("192.0.2.9"));
        h.append("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_addr(&h, peer, true), peer, "unparsable: the peer");
        assert_eq!(client_addr(&http::HeaderMap::new(), peer, true), peer);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("192.0.2.1"))
        );
        assert_ne!(ClientKey::of(ip("::1")), ClientKey::of(ip("0.0.0.1")));
    }

    #[test]
    fn the_table_stays_bounded_and_drops_finished_windows_first() {
        let l = AuthLimiter::new(2, Duration::from_secs(60), 3);
        let t0 = Instant::now() + Duration::from_secs(600);
        let blocked = ip("10.0.0.1");
        l.failed(blocked, t0);
        l.failed(blocked, t0);
        l.failed(ip("10.0.0.2"), t0 - Duration::from_secs(120));
        l.failed(ip("10.0.0.3"), t0);
        assert_eq!(l.tracked(), 3);
        // Full: the finished window of .2 goes, the blocked address stays.
        l.failed(ip("10.0.0.4"), t0 + Duration::from_secs(1));
        assert_eq!(l.tracked(), 3);
        assert!(l.blocked(blocked, t0 + Duration::from_secs(1)).is_some());
        // Full of live windows: the oldest goes.
        for i in 5..50 {
            l.failed(ip(&format!("10.0.0.{i}")), t0 + Duration::from_secs(2));
            assert!(l.tracked() <= 3);
        }
    }
}
