//! Idle tracking: when did a Space last do anything, and is anything open now.
//!
//! Activity is a request starting or ending, a body chunk moving either way,
//! and an open stream (a WebSocket or other upgraded tunnel, or an SSE
//! response) for as long as it stays open, so a Streamlit session with a quiet
//! socket is never "idle". The runtime or controller reads
//! [`crate::Proxy::activity`] to decide when to put a Space to sleep; this
//! module only counts and never stops anything itself.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What a Space is doing, as seen by this proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Time since the last activity; zero while a request or stream is open.
    pub idle_for: Duration,
    /// Requests waiting for or receiving a response head.
    pub in_flight: i64,
    /// Open WebSocket/upgraded tunnels and streaming (SSE) responses.
    pub open_streams: i64,
}

/// Per-Space activity counters. Cheap: a few relaxed atomics per event.
#[derive(Debug)]
pub struct IdleTracker {
    last_ms: AtomicU64,
    in_flight: AtomicI64,
    open_streams: AtomicI64,
}

impl Default for IdleTracker {
    fn default() -> Self {
        Self {
            last_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicI64::new(0),
            open_streams: AtomicI64::new(0),
        }
    }
}

impl IdleTracker {
    /// Records that something happened now.
    pub fn touch(&self) {
        let now = now_ms();
        // Skip the write when another event already stamped this millisecond.
        if self.last_ms.load(Ordering::Relaxed) != now {
            self.last_ms.store(now, Ordering::Relaxed);
        }
    }

    /// The current picture.
    pub fn activity(&self) -> Activity {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let open_streams = self.open_streams.load(Ordering::Relaxed);
        let idle_for = if in_flight > 0 || open_streams > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
        };
        Activity {
            idle_for,
            in_flight,
            open_streams,
        }
    }

    /// Marks a request in flight until the guard drops.
    pub fn request(self: &Arc<Self>) -> ActiveGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        ActiveGuard {
            tracker: self.clone(),
            stream: false,
        }
    }

    /// Marks a stream open until the guard drops.
    pub fn stream(self: &Arc<Self>) -> ActiveGuard {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        self.touch();
        ActiveGuard {
            tracker: self.clone(),
            stream: true,
        }
    }
}

/// Keeps a Space active while held.
#[derive(Debug)]
pub struct ActiveGuard {
    tracker: Arc<IdleTracker>,
    stream: bool,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let counter = if self.stream {
            &self.tracker.open_streams
        } else {
            &self.tracker.in_flight
        };
        counter.fetch_sub(1, Ordering::Relaxed);
        self.tracker.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_stream_keeps_idle_at_zero_until_closed() {
        let t = Arc::new(IdleTracker::default());
        t.last_ms.store(0, Ordering::Relaxed);
        let guard = t.stream();
        t.last_ms.store(0, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.activity().idle_for, Duration::ZERO);
        assert_eq!(t.activity().open_streams, 1);
        drop(guard);
        assert_eq!(t.activity().open_streams, 0);
        t.last_ms.store(0, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.activity().idle_for > Duration::ZERO);
    }
}
