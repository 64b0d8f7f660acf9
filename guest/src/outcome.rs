//! What a provider's evaluation concludes: ready, blocked (and how), or terminally failed; the
//! deadlines that bound the current wait; and the requeue that follows from both.

use capt_policy::duration::format_millis;

use crate::settings::Settings;
use crate::time::{Millis, format_timestamp};

/// How a blocked state behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Waiting for something to happen; look again after the poll interval.
    Wait,
    /// A transient error that began at `since` (if known); back off.
    Transient {
        /// When the error began.
        since: Option<Millis>,
    },
    /// A terminal failure: stays until a person acts.
    Terminal,
}

/// The result of evaluating one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything is in place.
    Ready {
        /// Ready reason.
        reason: String,
        /// Ready message.
        message: String,
    },
    /// Something blocks readiness.
    Blocked {
        /// The blocking reason (also the Ready reason).
        reason: String,
        /// Human-readable message.
        message: String,
        /// Wait, transient or terminal.
        class: Class,
    },
}

impl Outcome {
    /// A blocked outcome.
    pub fn blocked(reason: &str, message: impl Into<String>, class: Class) -> Self {
        Outcome::Blocked {
            reason: reason.to_owned(),
            message: message.into(),
            class,
        }
    }

    /// A terminal failure.
    pub fn terminal(reason: &str, message: impl Into<String>) -> Self {
        Self::blocked(reason, message, Class::Terminal)
    }

    /// The same outcome with a wait turned into a transient error that began at `since`: what
    /// is merely awaited during creation is an error once the object was created.
    pub fn into_transient(self, since: Option<Millis>) -> Self {
        match self {
            Outcome::Blocked {
                reason,
                message,
                class: Class::Wait,
            } => Outcome::Blocked {
                reason,
                message,
                class: Class::Transient { since },
            },
            other => other,
        }
    }

    /// True for errors, transient or terminal (their events are Warnings).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Outcome::Blocked {
                class: Class::Terminal | Class::Transient { .. },
                ..
            }
        )
    }

    /// True for terminal failures.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Outcome::Blocked {
                class: Class::Terminal,
                ..
            }
        )
    }

    /// The Ready reason and message.
    pub fn reason_and_message(&self) -> (&str, &str) {
        match self {
            Outcome::Ready { reason, message }
            | Outcome::Blocked {
                reason, message, ..
            } => (reason, message),
        }
    }
}

/// One deadline of the current wait.
#[derive(Debug, Clone, PartialEq)]
struct Deadline {
    reason: &'static str,
    at: Millis,
    message: String,
}

/// The deadlines of the current wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlines {
    /// The earliest start a clock may have (the last recovery from a terminal failure).
    floor: Option<Millis>,
    now: Millis,
    items: Vec<Deadline>,
}

impl Deadlines {
    /// No deadlines yet; clocks start no earlier than `floor`.
    pub fn new(floor: Option<Millis>, now: Millis) -> Self {
        Self {
            floor,
            now,
            items: Vec::new(),
        }
    }

    /// Adds a deadline: `reason` fires `timeout` after `started` (never before the clock floor;
    /// `None` means the wait starts now). `what` completes "... was not ... within".
    pub fn add(
        &mut self,
        reason: &'static str,
        started: Option<Millis>,
        timeout_millis: u64,
        what: &str,
    ) {
        let since = started
            .unwrap_or(self.now)
            .max(self.floor.unwrap_or(Millis::MIN));
        let at = since.saturating_add(i64::try_from(timeout_millis).unwrap_or(i64::MAX));
        self.items.push(Deadline {
            reason,
            at,
            message: format!(
                "{what} within {} (waiting since {})",
                format_millis(timeout_millis),
                format_timestamp(since)
            ),
        });
    }

    /// True when the current wait runs under the deadline `reason`.
    pub fn has(&self, reason: &str) -> bool {
        self.items.iter().any(|d| d.reason == reason)
    }

    /// The earliest deadline that has passed (`now >= at`), as a terminal outcome.
    pub fn fired(&self) -> Option<Outcome> {
        self.items
            .iter()
            .filter(|d| self.now >= d.at)
            .min_by_key(|d| d.at)
            .map(|d| Outcome::terminal(d.reason, d.message.clone()))
    }

    /// Milliseconds until the nearest deadline that has not passed.
    fn time_left(&self) -> Option<u64> {
        self.items
            .iter()
            .filter(|d| d.at > self.now)
            .map(|d| d.at.abs_diff(self.now))
            .min()
    }

    /// The requeue for an outcome: none when ready or terminal; the poll interval while waiting;
    /// the error's age clamped to the retry bounds after a transient error; never later than
    /// the nearest deadline.
    pub fn requeue(&self, outcome: &Outcome, settings: &Settings) -> Option<u64> {
        let wanted = match outcome {
            Outcome::Ready { .. }
            | Outcome::Blocked {
                class: Class::Terminal,
                ..
            } => return None,
            Outcome::Blocked {
                class: Class::Wait, ..
            } => settings.poll_interval.millis(),
            Outcome::Blocked {
                class: Class::Transient { since },
                ..
            } => {
                let age = since.map_or(0, |s| self.now.saturating_sub(s).max(0) as u64);
                age.clamp(
                    settings.min_retry_delay.millis(),
                    settings.max_retry_delay.millis(),
                )
            }
        };
        Some(self.time_left().map_or(wanted, |left| wanted.min(left)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_767_225_600_000;
    const MIN: i64 = 60_000;
    const MIN_U: u64 = 60_000;

    fn wait() -> Outcome {
        Outcome::blocked("Waiting", "w", Class::Wait)
    }

    #[test]
    fn a_deadline_fires_at_and_not_before_its_time() {
        let mut d = Deadlines::new(None, T0 + 15 * MIN - 1_000);
        d.add("Timeout", Some(T0), 15 * MIN_U, "VPC was not ready");
        assert_eq!(d.fired(), None);
        assert_eq!(d.requeue(&wait(), &Settings::default()), Some(1_000));
        let mut d = Deadlines::new(None, T0 + 15 * MIN);
        d.add("Timeout", Some(T0), 15 * MIN_U, "VPC was not ready");
        let fired = d.fired().unwrap();
        assert!(fired.is_terminal());
        assert_eq!(
            fired.reason_and_message().1,
            "VPC was not ready within 15m (waiting since 2026-01-01T00:00:00Z)"
        );
    }

    #[test]
    fn a_deadline_at_the_end_of_time_seen_from_before_the_epoch_does_not_overflow() {
        let mut d = Deadlines::new(None, -1);
        d.add("Timeout", Some(T0), u64::MAX, "VPC was not ready");
        assert_eq!(d.fired(), None);
        assert_eq!(
            d.requeue(&wait(), &Settings::default()),
            Some(Settings::default().poll_interval.millis())
        );
    }

    #[test]
    fn the_earliest_passed_deadline_wins_and_the_floor_delays_clocks() {
        let mut d = Deadlines::new(None, T0 + 20 * MIN);
        d.add("Late", Some(T0), 15 * MIN_U, "a");
        d.add("Early", Some(T0), 10 * MIN_U, "b");
        assert_eq!(d.fired().unwrap().reason_and_message().0, "Early");
        let mut d = Deadlines::new(Some(T0 + 10 * MIN), T0 + 20 * MIN);
        d.add("Late", Some(T0), 15 * MIN_U, "a");
        assert_eq!(d.fired(), None);
        assert!(d.has("Late") && !d.has("Early"));
        let mut d = Deadlines::new(None, T0);
        d.add("Huge", Some(T0), u64::MAX, "a");
        assert_eq!(d.fired(), None);
        assert_eq!(d.requeue(&wait(), &Settings::default()), Some(10_000));
    }

    #[test]
    fn transient_errors_back_off_with_age_within_bounds() {
        let s = Settings::default();
        let now = T0 + 60 * MIN;
        let d = Deadlines::new(None, now);
        let transient = |since| Outcome::blocked("E", "e", Class::Transient { since: Some(since) });
        assert_eq!(d.requeue(&transient(now - 1_000), &s), Some(5_000));
        assert_eq!(d.requeue(&transient(now - 42_000), &s), Some(42_000));
        assert_eq!(d.requeue(&transient(now - 50 * MIN), &s), Some(5 * MIN_U));
        assert_eq!(d.requeue(&Outcome::terminal("T", "t"), &s), None);
        assert_eq!(d.requeue(&wait(), &s), Some(10_000));
    }
}
