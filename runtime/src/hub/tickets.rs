//! Tickets that open a private Space's app on its own origin.
//!
//! The hub's sign-in cookie stays on the hub's host, so a private app (on
//! `<owner>-<name>.<domain>`) cannot see it. The Space's page instead frames
//! the app with a short-lived *sign* ticket in its URL (`?__sign=`); the
//! proxy exchanges it for a longer-lived *app* ticket in a cookie of the
//! app's host, and checks that cookie on every request. Both are HMACs under
//! the node's ticket key over (kind, Space, user, the user's browser session
//! on the hub, expiry): a ticket opens one Space for one user until it
//! expires, and only while that user may still read the Space and that
//! session lasts, so signing out of the hub closes the app too (the checker
//! asks the store each time). Neither is a hub token: the API and git never
//! accept one.
//!
//! Pure: no I/O, no clock (callers pass the time).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// How long a sign ticket from the Space's page may be used.
pub const SIGN_TTL_SECS: i64 = 120;
/// How long the app cookie opens the Space before the page must be opened
/// again.
pub const APP_TTL_SECS: i64 = 12 * 3600;

/// Every ticket starts with this, so it is never mistaken for a token.
const PREFIX: &str = "spt1.";

/// What a ticket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In the framed URL, exchanged once for an app ticket.
    Sign,
    /// In the app's cookie.
    App,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Sign => "s",
            Kind::App => "a",
        }
    }
}

/// A verified ticket's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The Space, `owner/name`.
    pub space: String,
    /// The user it was made for.
    pub user: String,
    /// The row id of the hub session it was made in.
    pub session: i64,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

/// The node's key for tickets.
#[derive(Debug, Clone)]
pub struct TicketKey(hmac::Key);

/// Whether a credential is a ticket (by its form alone).
pub fn is_ticket(value: &str) -> bool {
    value.starts_with(PREFIX)
}

impl TicketKey {
    /// A key from secret bytes (at least 32 are expected).
    pub fn new(secret: &[u8]) -> Self {
        TicketKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A ticket of `kind` for `user` (signed in by hub session `session`)
    /// on `space`, valid until `expires`.
    pub fn mint(&self, kind: Kind, space: &str, user: &str, session: i64, expires: i64) -> String {
        let payload = format!("{}\n{space}\n{user}\n{session}\n{expires}", kind.tag());
        let tag = hmac::sign(&self.0, &message(payload.as_bytes()));
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The ticket's contents when it is of `kind`, signed by this key and
    /// not expired at `now`.
    pub fn verify(&self, value: &str, kind: Kind, now: i64) -> Option<Ticket> {
        let rest = value.strip_prefix(PREFIX)?;
        if rest.len() > 2048 {
            return None;
        }
        let (payload, tag) = rest.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.0, &message(&payload), &tag).ok()?;
        let text = String::from_utf8(payload).ok()?;
        let mut fields = text.split('\n');
        let (Some(k), Some(space), Some(user), Some(session), Some(expires), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let session: i64 = session.parse().ok()?;
        let expires: i64 = expires.parse().ok()?;
        (k == kind.tag() && now <= expires).then(|| Ticket {
            space: space.to_owned(),
            user: user.to_owned(),
            session,
            expires,
        })
    }
}

/// A purpose prefix keeps these tags apart from any other use of a key.
fn message(payload: &[u8]) -> Vec<u8> {
    let mut m = b"spaceport-app-ticket\0".to_vec();
    m.extend_from_slice(payload);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TicketKey {
        TicketKey::new(&[3u8; 32])
    }

    #[test]
    fn a_ticket_verifies_for_its_kind_until_it_expires() {
        let k = key();
        let t = k.mint(Kind::Sign, "alice/app", "alice", 7, 100);
        assert!(is_ticket(&t));
        let got = k.verify(&t, Kind::Sign, 100).unwrap();
        assert_eq!(got.space, "alice/app");
        assert_eq!(got.user, "alice");
        assert_eq!(got.session, 7);
        assert_eq!(k.verify(&t, Kind::Sign, 101), None, "expired");
        assert_eq!(
            k.verify(&t, Kind::App, 50),
            None,
            "a sign ticket is no cookie"
        );
    }

    #[test]
    fn forged_or_altered_tickets_are_refused() {
        let k = key();
        let t = k.mint(Kind::App, "alice/app", "alice", 7, 100);
        let other = TicketKey::new(&[4u8; 32]);
        assert_eq!(other.verify(&t, Kind::App, 0), None);
        // Another user's name over the same tag.
        let (payload, tag) = t.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        text = text.replace("alice\n7\n100", "mallory\n7\n100");
        let forged = format!("{PREFIX}{}.{tag}", URL_SAFE_NO_PAD.encode(text));
        assert_eq!(k.verify(&forged, Kind::App, 0), None);
        assert_eq!(k.verify("sp_token", Kind::App, 0), None);
        assert_eq!(k.verify("spt1.", Kind::App, 0), None);
        assert_eq!(k.verify("spt1.a.b", Kind::App, 0), None);
    }

    #[test]
    fn fields_cannot_be_smuggled_through_names() {
        let k = key();
        // A newline in a name would shift the fields; the result never verifies
        // as anything but what was signed.
        let t = k.mint(Kind::App, "alice/app\nx", "bob", 7, 100);
        assert_eq!(k.verify(&t, Kind::App, 0), None);
    }
}
