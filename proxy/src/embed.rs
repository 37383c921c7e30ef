//! Embedding and response headers a Space may set.
//!
//! `disable_embedding` becomes `Content-Security-Policy: frame-ancestors` that
//! allows only the Space itself and the hub (which shows the app in its own
//! page), never the obsolete `X-Frame-Options: ALLOW-FROM`. The README's
//! `custom_headers` may only set the three cross-origin isolation headers;
//! anything else is refused when the route is built. Pages the proxy makes
//! itself get a strict default set. This module only computes headers; it
//! does not decide access or routing.

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::route::{Route, RouteError};

/// The only headers `custom_headers` may set.
pub const ALLOWED_CUSTOM_HEADERS: [&str; 3] = [
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
];

/// Headers added to every response of one Space, computed once per table.
#[derive(Debug, Clone, Default)]
pub struct SpaceHeaders {
    pub(crate) frame_ancestors: Option<HeaderValue>,
    pub(crate) custom: Vec<(HeaderName, HeaderValue)>,
}

impl SpaceHeaders {
    /// Builds the header set for a route; `hub_origin` is allowed to frame
    /// the Space even when embedding is disabled.
    pub fn compile(route: &Route, hub_origin: Option<&str>) -> Result<Self, RouteError> {
        let frame_ancestors = if route.disable_embedding {
            let value = match hub_origin {
                Some(o) => format!("frame-ancestors 'self' {o}"),
                None => "frame-ancestors 'self'".to_owned(),
            };
            Some(
                HeaderValue::try_from(value).map_err(|_| RouteError::CustomHeader {
                    space: route.space.clone(),
                    reason: "hub origin is not a valid header value".into(),
                })?,
            )
        } else {
            None
        };
        let mut custom = Vec::with_capacity(route.custom_headers.len());
        for (k, v) in &route.custom_headers {
            let lower = k.to_ascii_lowercase();
            if !ALLOWED_CUSTOM_HEADERS.contains(&lower.as_str()) {
                return Err(RouteError::CustomHeader {
                    space: route.space.clone(),
                    reason: format!(
                        "custom header {k:?} is not allowed (only {})",
                        ALLOWED_CUSTOM_HEADERS.join(", ")
                    ),
                });
            }
            let value =
                HeaderValue::try_from(v.as_str()).map_err(|_| RouteError::CustomHeader {
                    space: route.space.clone(),
                    reason: format!("custom header {k:?} has an invalid value"),
                })?;
            custom.push((
                HeaderName::from_bytes(lower.as_bytes()).expect("allowlisted"),
                value,
            ));
        }
        Ok(Self {
            frame_ancestors,
            custom,
        })
    }

    /// Adds the Space's headers to an upstream response. The app's own CSP
    /// stays: browsers enforce every CSP header, so ours can only tighten.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(fa) = &self.frame_ancestors {
            headers.append(CONTENT_SECURITY_POLICY, fa.clone());
            headers.remove(http::header::X_FRAME_OPTIONS);
        }
        for (k, v) in &self.custom {
            headers.insert(k.clone(), v.clone());
        }
    }
}

/// Security headers for pages the proxy renders (errors, waking up).
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *",
        ),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route::new("a/b".parse().unwrap(), "127.0.0.1:1")
    }

    #[test]
    fn frame_ancestors_only_when_embedding_is_disabled() {
        let open = SpaceHeaders::compile(&route(), Some("https://hub.test")).unwrap();
        assert!(open.frame_ancestors.is_none());
        let mut r = route();
        r.disable_embedding = true;
        let closed = SpaceHeaders::compile(&r, Some("https://hub.test")).unwrap();
        assert_eq!(
            closed.frame_ancestors.unwrap(),
            "frame-ancestors 'self' https://hub.test"
        );
    }

    #[test]
    fn only_cross_origin_isolation_headers_are_allowed() {
        let mut r = route();
        r.custom_headers
            .insert("Cross-Origin-Opener-Policy".into(), "same-origin".into());
        let h = SpaceHeaders::compile(&r, None).unwrap();
        assert_eq!(h.custom[0].0, "cross-origin-opener-policy");
        r.custom_headers.insert("set-cookie".into(), "a=b".into());
        assert!(SpaceHeaders::compile(&r, None).is_err());
        let mut r = route();
        r.custom_headers
            .insert("cross-origin-embedder-policy".into(), "bad\nvalue".into());
        assert!(SpaceHeaders::compile(&r, None).is_err());
    }
}
