//! The long-lived state of one Space: what outlives route table swaps.
//!
//! A table swap rebuilds routes, but a Space's replica counters, meter
//! handles, idle tracker, running flag and pending wake carry over, so a swap
//! never resets an ejection, loses a count, or starts a second wake. This
//! module only holds state; the request path lives in [`crate::forward`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::uri::Authority;
use tokio::sync::watch;

use crate::balance::Balancer;
use crate::idle::IdleTracker;
use crate::meter::{Meter, SpaceMeter, VisitorHasher};
use crate::route::SpaceId;
use crate::wake::WakeState;

/// Per-Space state shared by every table that contains the Space.
#[derive(Debug)]
pub struct SpaceRuntime {
    pub(crate) space: SpaceId,
    pub(crate) balancer: Balancer,
    pub(crate) meter: Arc<SpaceMeter>,
    pub(crate) idle: Arc<IdleTracker>,
    pub(crate) running: AtomicBool,
    pub(crate) wake: Mutex<Option<watch::Receiver<WakeState>>>,
}

impl SpaceRuntime {
    pub(crate) fn new(space: SpaceId, upstreams: &[Authority], meter: Arc<SpaceMeter>) -> Self {
        Self {
            space,
            balancer: Balancer::new(upstreams),
            meter,
            idle: Arc::new(IdleTracker::default()),
            running: AtomicBool::new(true),
            wake: Mutex::new(None),
        }
    }

    /// State with its own throwaway meter: for building tables outside a
    /// proxy (tests, fuzzing).
    pub(crate) fn detached(space: SpaceId) -> Self {
        let meter = Meter::new(VisitorHasher::new(b"detached")).space(&space);
        Self::new(space, &[], meter)
    }

    /// Whether the Space is believed to be serving.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }
}
