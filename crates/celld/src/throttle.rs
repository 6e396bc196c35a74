//! Login throttling. An attempt is counted when it starts, before its hash is checked, so a
//! burst cannot slip more guesses through than the schedule allows: after a few free
//! attempts each one doubles the wait before the next is heard, and a run of failures locks
//! the key out for a while. Keys are accounts (`user:alice`), sources (`addr:192.0.2.7`,
//! `addr:2001:db8:1:2::/64` — a whole IPv6 /64, which one household or attacker holds) and
//! the setup code's global budget (`setup:*`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const FREE_ATTEMPTS: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(60);
pub const LOCKOUT_AFTER: u32 = 10;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// A key with no attempt for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    keys: HashMap<String, Attempts>,
    refused: u64,
}

/// What counting an attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    /// This attempt used up the last one before a lockout.
    LockedOut,
}

impl Throttle {
    /// `Err(wait)` when `key` may not try again yet.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Some(attempts) = self.keys.get(key) else {
            return Ok(());
        };
        let ready_at = match attempts.locked_until {
            Some(until) => until,
            None => attempts.last + delay(attempts.count),
        };
        match ready_at.checked_duration_since(now) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Whether `key` is locked out (not merely waiting) now.
    pub fn locked(&self, key: &str, now: Instant) -> bool {
        self.keys
            .get(key)
            .and_then(|attempts| attempts.locked_until)
            .is_some_and(|until| until > now)
    }

    /// Admits one attempt against every key, counting it at once; or, when any key must
    /// wait, refuses it without counting and says how long (the longest wait).
    pub fn attempt(&mut self, keys: &[&str], now: Instant) -> Result<Outcome, Duration> {
        if let Some(wait) = keys.iter().filter_map(|k| self.check(k, now).err()).max() {
            self.refused += 1;
            return Err(wait);
        }
        self.forget_old(now);
        let mut outcome = Outcome::Counted;
        for key in keys {
            if self.count(key, now) == Outcome::LockedOut {
                outcome = Outcome::LockedOut;
            }
        }
        Ok(outcome)
    }

    /// Counts a failure against `key` after the fact, whether or not it must wait now (a
    /// mail login's address: checked before the password, counted once it failed, so that
    /// the logins that succeed never slow each other).
    pub fn count(&mut self, key: &str, now: Instant) -> Outcome {
        let attempts = self.keys.entry(key.to_owned()).or_insert(Attempts {
            count: 0,
            last: now,
            locked_until: None,
        });
        if attempts.locked_until.is_some_and(|until| until <= now) {
            *attempts = Attempts {
                count: 0,
                last: now,
                locked_until: None,
            };
        }
        attempts.count += 1;
        attempts.last = now;
        if attempts.count >= LOCKOUT_AFTER && attempts.locked_until.is_none() {
            attempts.locked_until = Some(now + LOCKOUT);
            return Outcome::LockedOut;
        }
        Outcome::Counted
    }

    /// Gives back an attempt that turned out not to be a guess (the hash never ran, or the
    /// password was right). A lockout it caused stays.
    pub fn refund(&mut self, key: &str) {
        if let Some(attempts) = self.keys.get_mut(key) {
            if attempts.locked_until.is_none() {
                attempts.count = attempts.count.saturating_sub(1);
                if attempts.count == 0 {
                    self.keys.remove(key);
                }
            }
        }
    }

    /// Notes an attempt refused without asking [`Throttle::attempt`] (a mail login that
    /// would wait longer than its client does).
    pub fn note_refused(&mut self) {
        self.refused += 1;
    }

    /// Attempts refused (told to wait) since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Forgets the key's attempts: an account after its owner logged in.
    pub fn clear(&mut self, key: &str) {
        self.keys.remove(key);
    }

    fn forget_old(&mut self, now: Instant) {
        self.keys.retain(|_, a| {
            now.saturating_duration_since(a.last) < FORGET_AFTER
                || a.locked_until.is_some_and(|u| u > now)
        });
    }
}

fn delay(count: u32) -> Duration {
    if count < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let exponent = (count - FREE_ATTEMPTS).min(6);
    Duration::from_secs(1 << exponent).min(MAX_DELAY)
}

/// The throttle key of an account.
pub fn account_key(username: &str) -> String {
    format!("user:{}", username.trim().to_lowercase())
}

/// The throttle key of a source address: the address itself for IPv4, its /64 for IPv6
/// (an IPv4-mapped IPv6 address counts as the IPv4 address). Requests without one (a
/// root process on the machine) share one key.
pub fn source_key(source: Option<&str>) -> String {
    match source.and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("addr:{v4}"),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("addr:{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
        None => format!("addr:{}", source.unwrap_or("local")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_before_their_outcome_so_a_burst_gets_only_the_free_ones() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        let admitted = (0..64)
            .filter(|_| throttle.attempt(&["user:a", "addr:x"], t0).is_ok())
            .count();
        assert_eq!(admitted, FREE_ATTEMPTS as usize);
        assert_eq!(
            throttle.attempt(&["user:a"], t0),
            Err(Duration::from_secs(1))
        );
        assert!(throttle
            .attempt(&["user:a"], t0 + Duration::from_secs(1))
            .is_ok());
        assert_eq!(
            throttle.check("user:a", t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(2)),
            "the wait doubles"
        );
        assert!(throttle.check("user:b", t0).is_ok(), "other keys are free");
    }

    #[test]
    fn ten_attempts_lock_the_key_out_for_fifteen_minutes() {
        let mut throttle = Throttle::default();
        let mut now = Instant::now();
        let mut outcomes = Vec::new();
        while outcomes.len() < LOCKOUT_AFTER as usize {
            match throttle.attempt(&["addr:x"], now) {
                Ok(outcome) => outcomes.push(outcome),
                Err(wait) => now += wait,
            }
        }
        assert_eq!(outcomes.last(), Some(&Outcome::LockedOut));
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Outcome::LockedOut)
                .count(),
            1
        );
        assert_eq!(throttle.check("addr:x", now), Err(LOCKOUT));
        assert!(throttle.check("addr:x", now + LOCKOUT).is_ok());
    }

    #[test]
    fn clearing_an_account_leaves_the_source_counted() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            throttle.attempt(&["user:a", "addr:x"], t0).unwrap();
        }
        throttle.clear("user:a");
        assert!(throttle.check("user:a", t0).is_ok());
        assert!(throttle.check("addr:x", t0).is_err());
        throttle.refund("addr:x");
        assert!(throttle.check("addr:x", t0).is_ok(), "one refunded");
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        assert_eq!(
            source_key(Some("2001:db8:1:2::7")),
            source_key(Some("2001:db8:1:2:ffff::1"))
        );
        assert_eq!(
            source_key(Some("2001:db8:1:2::7")),
            "addr:2001:db8:1:2::/64"
        );
        assert_ne!(
            source_key(Some("2001:db8:1:2::7")),
            source_key(Some("2001:db8:1:3::7"))
        );
        assert_eq!(source_key(Some("192.0.2.7")), "addr:192.0.2.7");
        assert_eq!(source_key(Some("::ffff:192.0.2.7")), "addr:192.0.2.7");
        assert_eq!(source_key(None), "addr:local");
    }
}
