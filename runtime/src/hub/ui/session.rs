//! Browser sessions: the sign-in cookie and the CSRF tokens of forms.
//!
//! The session cookie holds the id of a session the hub stored at sign-in
//! (see [`crate::state::SessionInfo`]), never a token: sign-out or revoking
//! the token ends the session on the hub, so a copied cookie stops working
//! too. It stays on the hub's host: the proxy strips it from requests to
//! apps ([`HUB_COOKIES`]), which a private app's frame opens through a
//! ticket instead (`crate::hub::tickets`). It is HttpOnly (page scripts never
//! see it), SameSite=Lax (other sites' forms do not carry it), and over
//! HTTPS Secure and `__Host-` prefixed (no subdomain can plant one). Every POST form
//! carries a CSRF token: an HMAC, under the node's UI key, of the session it
//! belongs to (the session id, or before sign-in the random value of the
//! [`PRE_COOKIE`]). A token copied from one browser is useless in another.
//! This module is pure: no I/O, no HTTP types beyond header values.

use base64::Engine as _;
use ring::hmac;

pub use crate::hub::api::auth::{TOKEN_COOKIE, session_cookie_name};

/// The random per-browser value forms are bound to before sign-in.
pub const PRE_COOKIE: &str = "spaceport_presession";

/// The pre-session cookie's name: `__Host-` prefixed over HTTPS, as the
/// session's (see [`session_cookie_name`]): a value planted by a subdomain
/// would let it forge the sign-in form.
pub fn pre_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-spaceport_presession"
    } else {
        PRE_COOKIE
    }
}

/// Every cookie of the hub's origin: the proxy strips them from requests to
/// apps and refuses them from apps' responses.
pub const HUB_COOKIES: [&str; 2] = [TOKEN_COOKIE, PRE_COOKIE];

/// The session's lifetime, as the cookie's Max-Age.
const SESSION_MAX_AGE_SECS: i64 = crate::state::SESSION_TTL_SECS;

/// The node's key for CSRF tokens.
#[derive(Debug, Clone)]
pub struct CsrfKey(hmac::Key);

impl CsrfKey {
    /// A key from secret bytes (at least 32 are expected).
    pub fn new(secret: &[u8]) -> Self {
        CsrfKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The form token for a session value.
    pub fn token(&self, session: &str) -> String {
        let tag = hmac::sign(&self.0, &message(session));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `given` is the form token of `session` (constant time).
    pub fn check(&self, session: &str, given: &str) -> bool {
        if session.is_empty() {
            return false;
        }
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given.trim()) else {
            return false;
        };
        hmac::verify(&self.0, &message(session), &tag).is_ok()
    }
}

/// What is signed: a purpose prefix keeps these tags apart from any other
/// use of the key.
fn message(session: &str) -> Vec<u8> {
    let mut m = b"spaceport-ui-csrf\0".to_vec();
    m.extend_from_slice(session.as_bytes());
    m
}

/// Whether a value can travel in a cookie as it is (the pre-sign-in value
/// and session ids do; anything else is ignored rather than mangled).
pub fn cookie_safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn attributes(secure: bool) -> &'static str {
    if secure {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` of a new session.
pub fn session_cookie(session: &str, secure: bool) -> String {
    format!(
        "{}={session}; Max-Age={SESSION_MAX_AGE_SECS}{}",
        session_cookie_name(secure),
        attributes(secure)
    )
}

/// `Set-Cookie` that ends the session.
pub fn clear_session_cookie(secure: bool) -> String {
    format!(
        "{}=; Max-Age=0{}",
        session_cookie_name(secure),
        attributes(secure)
    )
}

/// `Set-Cookie` of the pre-sign-in value (a browser-session cookie).
pub fn pre_cookie(value: &str, secure: bool) -> String {
    format!("{}={value}{}", pre_cookie_name(secure), attributes(secure))
}

/// A fresh random value for the pre-sign-in cookie.
pub fn random_value() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CsrfKey {
        CsrfKey::new(&[7u8; 32])
    }

    #[test]
    fn a_token_checks_only_for_its_own_session() {
        let k = key();
        let t = k.token("hf_alice");
        assert!(k.check("hf_alice", &t));
        assert!(!k.check("hf_bob", &t));
        assert!(!k.check("hf_alice", ""));
        assert!(!k.check("hf_alice", "not base64 !"));
        assert!(!k.check("", &k.token("")), "no session, no valid token");
    }

    #[test]
    fn another_key_makes_other_tokens() {
        let other = CsrfKey::new(&[8u8; 32]);
        assert!(!other.check("hf_alice", &key().token("hf_alice")));
    }

    #[test]
    fn cookies_are_httponly_lax_and_secure_only_over_https() {
        let c = session_cookie("sps_abc", false);
        assert!(c.starts_with("spaceport_session=sps_abc;"), "{c}");
        assert!(c.contains("Max-Age=604800;"), "seven days: {c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
        let https = session_cookie("sps_abc", true);
        assert!(
            https.starts_with("__Host-spaceport_session=sps_abc;"),
            "{https}"
        );
        assert!(
            https.ends_with("; Secure") && https.contains("Path=/"),
            "{https}"
        );
        assert!(!https.contains("Domain"), "{https}");
        assert!(pre_cookie("x", true).starts_with("__Host-spaceport_presession=x;"));
        assert!(clear_session_cookie(false).contains("Max-Age=0"));
        assert!(pre_cookie("x", true).contains("HttpOnly"));
    }

    #[test]
    fn only_plain_tokens_go_into_cookies() {
        assert!(cookie_safe("hf_AbC-12.3"));
        assert!(!cookie_safe(""));
        assert!(!cookie_safe("a;b"));
        assert!(!cookie_safe("a b"));
        assert!(!cookie_safe("a\r\nSet-Cookie: x"));
    }

    #[test]
    fn random_values_differ() {
        let a = random_value().unwrap();
        let b = random_value().unwrap();
        assert_ne!(a, b);
        assert!(cookie_safe(&a));
    }
}
