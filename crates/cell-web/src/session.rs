//! The browser's side of a session: cell-web holds no sessions of its own. The session
//! token celld handed out at login travels in an HttpOnly, SameSite=Strict cookie and is
//! forwarded to celld with every request; celld says whose it is, or that it has ended.

use axum::http::{header, HeaderMap, HeaderValue};
use cell_model::api::CurrentSession;
use rand::Rng;

pub const COOKIE: &str = "cell_session";
/// The login form's own token (login CSRF): a cookie of its own and a hidden field.
pub const LOGIN_COOKIE: &str = "cell_login";
/// How long the browser keeps the cookie; celld ends the session itself much sooner
/// when it is idle.
const COOKIE_MAX_AGE: u64 = 12 * 60 * 60;
/// Header API clients send the CSRF token in; HTML forms send a `csrf` field instead.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session of a request, as celld resolved it: put in the request's extensions by the
/// guard for every route that needs a login.
#[derive(Clone)]
pub struct WebSession {
    pub token: String,
    pub current: CurrentSession,
}

/// A cookie's value from the request, when well formed (64 hex digits).
pub fn cookie_from(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The session token from the request's cookies.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    cookie_from(headers, COOKIE)
}

pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for a new session; `Secure` when the cell is reached over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    cookie(COOKIE, token, "/", COOKIE_MAX_AGE, secure)
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie(COOKIE, "", "/", 0, secure)
}

/// `Set-Cookie` for the login form's token.
pub fn set_login_cookie(token: &str, secure: bool) -> HeaderValue {
    cookie(LOGIN_COOKIE, token, "/login", 60 * 60, secure)
}

/// Constant-time check of an offered token against the expected one.
pub fn tokens_match(expected: &str, offered: Option<&str>) -> bool {
    let Some(offered) = offered else { return false };
    let expected = expected.as_bytes();
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
    use super::*;

    #[test]
    fn cookies_are_http_only_and_strict() {
        let cookie = set_cookie("ab", false).to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie("ab", true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
        let login = set_login_cookie("cd", false).to_str().unwrap().to_owned();
        assert!(login.contains("Path=/login") && login.contains("SameSite=Strict"));
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
    fn tokens_must_match_exactly() {
        assert!(tokens_match("abc", Some("abc")));
        assert!(!tokens_match("abc", Some("abd")));
        assert!(!tokens_match("abc", Some("abcd")));
        assert!(!tokens_match("abc", None));
    }
}
