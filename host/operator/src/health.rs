//! Liveness: whether the reconcile loop makes progress. Every reconcile is tracked while it
//! runs; `/healthz` fails while one has been running longer than the stall timeout. Nothing a
//! reconcile does may take that long when it works: each policy call has a deadline and each
//! API request a timeout, so a reconcile past it is stuck, and a restart is the way out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reconciles running now.
#[derive(Debug)]
pub(crate) struct Progress {
    stall_timeout: Duration,
    next: AtomicU64,
    running: Mutex<HashMap<u64, (String, Instant)>>,
}

/// A reconcile found running longer than the stall timeout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stall {
    /// What it reconciles.
    pub(crate) what: String,
    /// How long it has been running.
    pub(crate) running_for: Duration,
}

impl Progress {
    /// Nothing running yet; a reconcile stalls after `stall_timeout`.
    pub(crate) fn new(stall_timeout: Duration) -> Self {
        Self {
            stall_timeout,
            next: AtomicU64::new(0),
            running: Mutex::default(),
        }
    }

    /// Tracks a reconcile of `what` until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>, what: String) -> Running {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (what, Instant::now()));
        Running {
            progress: self.clone(),
            id,
        }
    }

    /// The longest-running reconcile, if it has been running longer than the stall timeout.
    pub(crate) fn stalled(&self) -> Option<Stall> {
        let running = self.lock();
        let (what, started) = running.values().min_by_key(|(_, started)| *started)?;
        let running_for = started.elapsed();
        (running_for > self.stall_timeout).then(|| Stall {
            what: what.clone(),
            running_for,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Instant)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reconcile running; dropping it (the reconcile finished, or was abandoned) ends it.
#[derive(Debug)]
pub(crate) struct Running {
    progress: Arc<Progress>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.progress.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_reconcile_past_the_stall_timeout_is_reported_until_it_ends() {
        let progress = Arc::new(Progress::new(Duration::ZERO));
        assert_eq!(progress.stalled(), None, "nothing runs");
        let oldest = progress.begin("CAPTCluster default/a".into());
        std::thread::sleep(Duration::from_millis(2));
        let newer = progress.begin("CAPTCluster default/b".into());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            progress.stalled().map(|stall| stall.what).as_deref(),
            Some("CAPTCluster default/a")
        );
        drop(oldest);
        assert_eq!(
            progress.stalled().map(|stall| stall.what).as_deref(),
            Some("CAPTCluster default/b")
        );
        drop(newer);
        assert_eq!(progress.stalled(), None, "nothing runs any more");
    }

    #[test]
    fn a_reconcile_within_the_stall_timeout_is_progress() {
        let progress = Arc::new(Progress::new(Duration::from_secs(3600)));
        let _running = progress.begin("CAPTCluster default/a".into());
        assert_eq!(progress.stalled(), None);
    }
}
