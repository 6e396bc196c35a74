//! Login throttling: after a few free attempts each failure doubles the wait before the
//! next attempt is heard, and a run of failures locks the key out for a while. Keys are
//! accounts (`user:alice`) and source addresses (`addr:192.0.2.7`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

const FREE_ATTEMPTS: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(60);
const LOCKOUT_AFTER: u32 = 10;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    keys: HashMap<String, Failures>,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    LockedOut,
}

impl Throttle {
    /// `Err(wait)` when `key` may not try again yet.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Some(failures) = self.keys.get(key) else {
            return Ok(());
        };
        if let Some(until) = failures.locked_until {
            return match until.checked_duration_since(now) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => Ok(()),
            };
        }
        let ready_at = failures.last + delay(failures.count);
        match ready_at.checked_duration_since(now) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    pub fn failure(&mut self, key: &str, now: Instant) -> Outcome {
        self.keys.retain(|_, f| {
            now.saturating_duration_since(f.last) < FORGET_AFTER
                || f.locked_until.is_some_and(|u| u > now)
        });
        let failures = self.keys.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if failures.locked_until.is_some_and(|until| until <= now) {
            *failures = Failures {
                count: 0,
                last: now,
                locked_until: None,
            };
        }
        failures.count += 1;
        failures.last = now;
        if failures.count >= LOCKOUT_AFTER && failures.locked_until.is_none() {
            failures.locked_until = Some(now + LOCKOUT);
            return Outcome::LockedOut;
        }
        Outcome::Counted
    }

    pub fn success(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

fn delay(count: u32) -> Duration {
    if count < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let exponent = (count - FREE_ATTEMPTS).min(6);
    Duration::from_secs(1 << exponent).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempts_are_free_then_delays_grow() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            throttle.failure("user:a", t0);
            assert!(throttle.check("user:a", t0).is_ok());
        }
        throttle.failure("user:a", t0);
        assert_eq!(throttle.check("user:a", t0), Err(Duration::from_secs(1)));
        throttle.failure("user:a", t0);
        assert_eq!(throttle.check("user:a", t0), Err(Duration::from_secs(2)));
        assert!(throttle
            .check("user:a", t0 + Duration::from_secs(2))
            .is_ok());
        assert!(
            throttle.check("user:b", t0).is_ok(),
            "other keys are unaffected"
        );
    }

    #[test]
    fn ten_failures_lock_the_key_out_for_fifteen_minutes() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        let outcomes: Vec<_> = (0..LOCKOUT_AFTER)
            .map(|_| throttle.failure("addr:x", t0))
            .collect();
        assert_eq!(outcomes.last(), Some(&Outcome::LockedOut));
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Outcome::LockedOut)
                .count(),
            1
        );
        assert_eq!(throttle.check("addr:x", t0), Err(LOCKOUT));
        assert!(throttle.check("addr:x", t0 + LOCKOUT).is_ok());
    }

    #[test]
    fn success_clears_the_record() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failure("user:a", t0);
        }
        throttle.success("user:a");
        assert!(throttle.check("user:a", t0).is_ok());
    }
}
