//! Pages the proxy answers itself, and the one place where a failure becomes
//! a status code.
//!
//! Every error on the request path is a [`Failure`]; [`Failure::response`]
//! maps it to 400/404/413/431/502/503/504 and a short HTML page naming the
//! Space and the reason (or plain text for clients that do not ask for HTML).
//! The page text is escaped; nothing from the request is echoed unescaped.
//! This module renders; it does not decide what failed.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::forward::ProxyBody;
use crate::route::SpaceId;

/// Why the proxy answered instead of the Space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Malformed or contradictory request (for example a Host that disagrees
    /// with the request target).
    BadRequest(&'static str),
    /// No such Space, or a private one without a valid token.
    NotFound,
    /// Request body over the limit.
    BodyTooLarge,
    /// Request headers over the limit.
    HeadersTooLarge,
    /// The upstream refused the connection or broke the exchange.
    BadGateway(SpaceId, String),
    /// The Space cannot serve now (asleep, failed to wake, no replica).
    Unavailable {
        /// The Space.
        space: SpaceId,
        /// Why.
        reason: String,
        /// Seconds for Retry-After.
        retry_after: u32,
    },
    /// The upstream did not answer in time.
    GatewayTimeout(SpaceId, String),
    /// The Space is waking: a page that reloads itself.
    Waking {
        /// The Space.
        space: SpaceId,
        /// Seconds until the page reloads.
        refresh: u32,
    },
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Failure {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::BadGateway(..) => StatusCode::BAD_GATEWAY,
            Failure::Unavailable { .. } | Failure::Waking { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::GatewayTimeout(..) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn text(&self) -> (String, String) {
        match self {
            Failure::BadRequest(why) => ("Bad request".into(), (*why).to_owned()),
            Failure::NotFound => (
                "Not found".into(),
                "There is no Space at this address.".into(),
            ),
            Failure::BodyTooLarge => (
                "Request too large".into(),
                "The request body is over the limit.".into(),
            ),
            Failure::HeadersTooLarge => (
                "Headers too large".into(),
                "The request headers are over the limit.".into(),
            ),
            Failure::BadGateway(space, why) => (
                format!("{space} is not responding"),
                format!("The Space's app failed: {why}."),
            ),
            Failure::Unavailable { space, reason, .. } => {
                (format!("{space} is unavailable"), format!("{reason}."))
            }
            Failure::GatewayTimeout(space, why) => (
                format!("{space} timed out"),
                format!("The Space's app did not answer: {why}."),
            ),
            Failure::Waking { space, .. } => (
                format!("{space} is waking up"),
                "This Space was asleep and is starting. This page reloads by itself.".into(),
            ),
        }
    }

    /// The response: HTML when `html`, plain text otherwise.
    pub fn response(&self, html: bool) -> Response<ProxyBody> {
        let (title, detail) = self.text();
        let (body, ctype) = if html {
            let refresh = match self {
                Failure::Waking { refresh, .. } => {
                    format!("<meta http-equiv=\"refresh\" content=\"{refresh}\">")
                }
                _ => String::new(),
            };
            let page = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{t}</title>\
                 <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;\
                 padding:0 1em;color:#222}}</style></head><body><h1>{t}</h1><p>{d}</p>\
                 <p><small>{code}</small></p></body></html>\n",
                t = escape(&title),
                d = escape(&detail),
                code = self.status()
            );
            (page, "text/html; charset=utf-8")
        } else {
            (
                format!("{}: {title}: {detail}\n", self.status().as_u16()),
                "text/plain; charset=utf-8",
            )
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        crate::embed::page_headers(h);
        match self {
            Failure::Unavailable { retry_after, .. } => {
                h.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Failure::Waking { refresh, .. } => {
                h.insert(RETRY_AFTER, HeaderValue::from(*refresh));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_space_and_escape_the_reason() {
        let f = Failure::BadGateway("a/b".parse().unwrap(), "<script>".into());
        let resp = f.response(true);
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let (title, detail) = f.text();
        assert!(title.contains("a/b"));
        assert!(escape(&detail).contains("&lt;script&gt;"));
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let f = Failure::Unavailable {
            space: "a/b".parse().unwrap(),
            reason: "x".into(),
            retry_after: 7,
        };
        assert_eq!(f.response(false).headers()[RETRY_AFTER], "7");
    }
}
