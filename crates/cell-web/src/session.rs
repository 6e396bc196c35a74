//! Server-side sessions: a random token in an HttpOnly, SameSite=Strict cookie names a
//! session held in memory; each session carries its CSRF token. Sessions end after 30
//! idle minutes or 12 hours, whichever comes first, and when cell-web restarts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use cell_model::api::Principal;
use rand::Rng;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "cell_session";
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Header API clients send the CSRF token in; HTML forms send a `csrf` field instead.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Sessions by the SHA-256 of their token, so a memory dump does not hand out cookies.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Starts a session; returns its cookie token.
    pub fn create(&self, principal: Principal, now: Instant) -> (String, Session) {
        let token = random_token();
        let session = Session {
            principal,
            csrf: random_token(),
            created: now,
            last_seen: now,
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| alive(s, now));
        sessions.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The live session of `token`, its idle timer restarted.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.lock();
        let key = digest(token);
        match sessions.get_mut(&key) {
            Some(session) if alive(session, now) => {
                session.last_seen = now;
                Some(session.clone())
            }
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Ends every session of `user` (after a password reset, disabling or deletion).
    pub fn end_all_of(&self, user: &str) {
        self.lock().retain(|_, s| s.principal.name.as_str() != user);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_token_hash
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.saturating_duration_since(session.last_seen) < IDLE_TIMEOUT
        && now.saturating_duration_since(session.created) < ABSOLUTE_TIMEOUT
}

/// The session token from the request's cookies.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for a new session; `Secure` when the cell is reached over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ABSOLUTE_TIMEOUT.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "cell_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static("cell_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// Constant-time check of an offered CSRF token.
pub fn csrf_matches(session: &Session, offered: Option<&str>) -> bool {
    let Some(offered) = offered else { return false };
    let expected = session.csrf.as_bytes();
    let offered = offered.as_bytes();
    expected.len() == offered.len()
        && expected
            .iter()
            .zip(offered)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use cell_model::{Role, Username};

    use super::*;

    fn alice() -> Principal {
        Principal {
            name: Username::parse("alice").unwrap(),
            role: Role::Admin,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let (token, _) = sessions.create(alice(), t0);
        assert!(sessions.get(&token, t0 + IDLE_TIMEOUT / 2).is_some());
        // Each use restarts the idle timer...
        let mut now = t0;
        while now < t0 + ABSOLUTE_TIMEOUT - IDLE_TIMEOUT / 2 {
            now += IDLE_TIMEOUT / 2;
            assert!(sessions.get(&token, now).is_some());
        }
        // ...but not the absolute one.
        assert!(sessions.get(&token, t0 + ABSOLUTE_TIMEOUT).is_none());
        let (idle, _) = sessions.create(alice(), t0);
        assert!(sessions.get(&idle, t0 + IDLE_TIMEOUT).is_none());
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let cookie = set_cookie("ab", false).to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie("ab", true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn tokens_are_read_from_the_cookie_header_only_when_well_formed() {
        let token = "a".repeat(64);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("x=1; {COOKIE}={token}").parse().unwrap(),
        );
        assert_eq!(token_from(&headers), Some(token));
        headers.insert(header::COOKIE, format!("{COOKIE}=short").parse().unwrap());
        assert_eq!(token_from(&headers), None);
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        let sessions = Sessions::default();
        let (_, session) = sessions.create(alice(), Instant::now());
        assert!(csrf_matches(&session, Some(&session.csrf.clone())));
        assert!(!csrf_matches(&session, Some("nope")));
        assert!(!csrf_matches(&session, None));
    }
}
