//! A log that many readers follow: lines are kept in a bounded history (the
//! oldest dropped first) and broadcast to live subscribers, so a client that
//! connects mid-build sees what came before and then every new line. Used
//! for build logs and run logs alike. It stores only; it never writes to
//! disk or formats lines.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Lines kept by default (HF shows about this much of a build).
pub const DEFAULT_HISTORY_LINES: usize = 10_000;

#[derive(Debug)]
pub struct LogBook {
    history: Mutex<VecDeque<String>>,
    capacity: usize,
    live: broadcast::Sender<String>,
    dropped: std::sync::atomic::AtomicU64,
}

impl LogBook {
    /// A log keeping the last `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Self {
        LogBook {
            history: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            live: broadcast::channel(1024).0,
            dropped: 0.into(),
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a line and hands it to every subscriber.
    pub fn push(&self, line: impl Into<String>) {
        let line = line.into();
        let mut history = self.history();
        if history.len() == self.capacity {
            history.pop_front();
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        history.push_back(line.clone());
        // Sent under the lock, so a subscriber sees each line exactly once
        // across its snapshot and its receiver.
        let _ = self.live.send(line);
    }

    /// The kept lines, then a receiver of every later line.
    pub fn subscribe(&self) -> (Vec<String>, broadcast::Receiver<String>) {
        let history = self.history();
        (history.iter().cloned().collect(), self.live.subscribe())
    }

    /// The kept lines.
    pub fn lines(&self) -> Vec<String> {
        self.history().iter().cloned().collect()
    }

    /// The last `n` kept lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let history = self.history();
        history
            .iter()
            .skip(history.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Lines dropped from the front to keep the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_drops_the_oldest_lines() {
        let log = LogBook::new(3);
        for i in 0..5 {
            log.push(format!("line {i}"));
        }
        assert_eq!(log.lines(), ["line 2", "line 3", "line 4"]);
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.tail(2), ["line 3", "line 4"]);
    }

    #[tokio::test]
    async fn a_late_subscriber_gets_the_history_then_live_lines() {
        let log = LogBook::new(10);
        log.push("before");
        let (history, mut live) = log.subscribe();
        log.push("after");
        assert_eq!(history, ["before"]);
        assert_eq!(live.recv().await.unwrap(), "after");
    }
}
