//! Origins: what may cross between a Space's app and everything else.
//!
//! A Space's app is hostile content. On its own host (`<owner>-<name>.<domain>`)
//! it is an origin of its own, so browsers keep its scripts away from the hub
//! and from other Spaces; this module keeps the proxy from undoing that:
//! - the hub's cookies and the app-access cookie never reach an app, and an
//!   app cannot set them, nor any cookie with a `Domain` attribute (which
//!   would reach sibling Spaces and a hub on a parent domain);
//! - a path-routed app (`/apps/<owner>/<name>/`) shares its origin with
//!   every other path-routed app and with whatever serves that port (the
//!   hub, in `spaceport up`), so each of its responses is sandboxed by CSP
//!   without `allow-same-origin` (its documents get an opaque origin: no
//!   cookies, no storage, no same-origin reads), it gets no cookies at all
//!   and may set none;
//! - a private app opened from the hub's page arrives with a short-lived
//!   ticket in the `__sign` query parameter, which the proxy exchanges for
//!   a cookie on the app's own host and then removes from the URL.
//!
//! Pure functions over headers and query strings; the request path in
//! `forward` decides when each applies.

use http::HeaderMap;
use http::HeaderValue;
use http::header::{CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};

/// The query parameter carrying a ticket from the hub's page.
pub const SIGN_PARAM: &str = "__sign";

/// The policy of every path-routed response: scripts, forms, popups and
/// downloads work, but the document's origin is opaque (no
/// `allow-same-origin`), so it can neither read nor act as the origin it was
/// served from.
pub const PATH_SANDBOX: &str = "sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads allow-presentation allow-pointer-lock allow-orientation-lock";

/// Makes a path-routed response safe on a shared origin: its cookies are
/// dropped and its documents are sandboxed.
pub fn sandbox_path_response(headers: &mut HeaderMap) {
    headers.remove(SET_COOKIE);
    // Appended, not inserted: an app's own policy still applies beside it.
    headers.append(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PATH_SANDBOX),
    );
}

/// Whether a cookie name is one of `names`, in any of the browser's
/// prefixed forms (`__Host-`, `__Secure-`), compared as browsers do (exactly).
fn is_named(name: &str, names: &[String]) -> bool {
    let bare = name
        .strip_prefix("__Host-")
        .or_else(|| name.strip_prefix("__Secure-"))
        .unwrap_or(name);
    names.iter().any(|n| n == name || n == bare)
}

/// Whether an app may set this cookie on its own host: not one of the
/// reserved names, and no `Domain` attribute.
fn allowed_set_cookie(line: &[u8], reserved: &[String]) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let mut parts = line.split(';');
    let Some((name, _)) = parts.next().and_then(|p| p.split_once('=')) else {
        return false;
    };
    if is_named(name.trim(), reserved) {
        return false;
    }
    !parts.any(|attr| {
        attr.split_once('=')
            .map_or(attr, |(k, _)| k)
            .trim()
            .eq_ignore_ascii_case("domain")
    })
}

/// Drops the `Set-Cookie` lines of an app's response that it may not send:
/// reserved names and any cookie scoped by `Domain` beyond the app's host.
pub fn confine_set_cookies(headers: &mut HeaderMap, reserved: &[String]) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| allowed_set_cookie(v.as_bytes(), reserved))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in kept {
        headers.append(SET_COOKIE, v);
    }
}

/// Removes the named cookies from a request's `Cookie` headers, keeping the
/// others (in their order).
pub fn strip_cookies(headers: &mut HeaderMap, names: &[String]) {
    let mut found = false;
    let mut kept: Vec<&str> = Vec::new();
    for v in headers.get_all(COOKIE) {
        let Ok(line) = v.to_str() else {
            found = true;
            continue;
        };
        for pair in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(k, _)| k).trim();
            if is_named(name, names) {
                found = true;
            } else {
                kept.push(pair);
            }
        }
    }
    if !found {
        return;
    }
    let joined = kept.join("; ");
    headers.remove(COOKIE);
    if !joined.is_empty()
        && let Ok(v) = HeaderValue::from_str(&joined)
    {
        headers.insert(COOKIE, v);
    }
}

/// A ticket in a query string: the ticket and the query without it
/// (`None` when nothing else remains).
pub fn take_sign_param(query: &str) -> Option<(&str, Option<String>)> {
    let mut ticket = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((SIGN_PARAM, v)) if ticket.is_none() => ticket = Some(v),
            _ if pair == SIGN_PARAM || pair.starts_with("__sign=") => {}
            _ if !pair.is_empty() => rest.push(pair),
            _ => {}
        }
    }
    let ticket = ticket.filter(|t| !t.is_empty())?;
    Some((ticket, (!rest.is_empty()).then(|| rest.join("&"))))
}

/// Whether browsers treat this host as a secure context over plain HTTP
/// (`localhost` and its subdomains), where `Secure` cookies work without TLS.
pub fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h.eq_ignore_ascii_case("localhost")
        || h.len() > ".localhost".len()
            && h[h.len() - ".localhost".len()..].eq_ignore_ascii_case(".localhost")
}

/// The `Set-Cookie` of the app-access cookie. Over TLS or on localhost it is
/// `SameSite=None; Secure; Partitioned`, so it works inside the hub's frame
/// (another site) even where browsers block third-party cookies: it is kept
/// apart per top-level site, so the hub's frame and the app's own tab each
/// get their own. Elsewhere browsers refuse `SameSite=None` without
/// `Secure`, so it is `Lax`: the app then works in its own tab but not
/// framed.
pub fn app_cookie(name: &str, value: &str, max_age_secs: u64, secure_context: bool) -> String {
    let site = if secure_context {
        "SameSite=None; Secure; Partitioned"
    } else {
        "SameSite=Lax"
    };
    format!("{name}={value}; Max-Age={max_age_secs}; Path=/; HttpOnly; {site}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["spaceport_session".into(), "spaceport_app".into()]
    }

    fn set_cookies(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(SET_COOKIE, l.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_app_cannot_set_the_hubs_cookies_or_domain_cookies() {
        let mut h = set_cookies(&[
            "theme=dark; Path=/",
            "spaceport_session=attacker; Path=/",
            "__Host-spaceport_session=attacker; Path=/; Secure",
            "__Secure-spaceport_app=x; Secure",
            "wide=1; Domain=localhost; Path=/",
            "wide2=1; path=/; domain=.example.org",
            "_streamlit_xsrf=abc; Path=/; SameSite=Strict",
        ]);
        confine_set_cookies(&mut h, &names());
        let kept: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            kept,
            [
                "theme=dark; Path=/",
                "_streamlit_xsrf=abc; Path=/; SameSite=Strict"
            ]
        );
    }

    #[test]
    fn path_routed_responses_are_sandboxed_and_set_no_cookies() {
        let mut h = set_cookies(&["a=1"]);
        h.insert(
            CONTENT_SECURITY_POLICY,
            "default-src 'self'".parse().unwrap(),
        );
        sandbox_path_response(&mut h);
        assert!(h.get(SET_COOKIE).is_none());
        let csp: Vec<_> = h.get_all(CONTENT_SECURITY_POLICY).iter().collect();
        assert_eq!(csp.len(), 2, "the app's own policy stays");
        let sandbox = csp[1].to_str().unwrap();
        assert!(sandbox.starts_with("sandbox "));
        assert!(!sandbox.contains("allow-same-origin"));
        assert!(!sandbox.contains("allow-top-navigation"));
    }

    #[test]
    fn reserved_cookies_are_stripped_from_requests_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            "a=1; spaceport_session=s; __Host-spaceport_session=t"
                .parse()
                .unwrap(),
        );
        h.append(COOKIE, "spaceport_app=x; b=2".parse().unwrap());
        strip_cookies(&mut h, &names());
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        let mut only = HeaderMap::new();
        only.insert(COOKIE, "spaceport_app=x".parse().unwrap());
        strip_cookies(&mut only, &names());
        assert!(only.get(COOKIE).is_none());
        let mut none = HeaderMap::new();
        none.insert(COOKIE, "a=1;b=2".parse().unwrap());
        strip_cookies(&mut none, &names());
        assert_eq!(none.get(COOKIE).unwrap(), "a=1;b=2", "untouched");
    }

    #[test]
    fn the_sign_parameter_is_taken_out_of_the_query() {
        assert_eq!(take_sign_param("__sign=abc"), Some(("abc", None)));
        assert_eq!(
            take_sign_param("x=1&__sign=abc&y=2"),
            Some(("abc", Some("x=1&y=2".into())))
        );
        assert_eq!(
            take_sign_param("__sign=abc&__sign=def&z"),
            Some(("abc", Some("z".into())))
        );
        assert_eq!(take_sign_param("x=1"), None);
        assert_eq!(take_sign_param("__sign="), None);
        assert_eq!(take_sign_param("x__sign=1"), None);
    }

    #[test]
    fn app_cookies_are_cross_site_only_where_browsers_allow_it() {
        let c = app_cookie("spaceport_app", "v", 60, true);
        assert!(c.contains("SameSite=None; Secure; Partitioned") && c.contains("HttpOnly"));
        assert!(!c.contains("Domain"));
        assert!(app_cookie("spaceport_app", "v", 60, false).ends_with("SameSite=Lax"));
        assert!(is_localhost("alice-demo.localhost"));
        assert!(is_localhost("LOCALHOST"));
        assert!(!is_localhost("notlocalhost"));
        assert!(!is_localhost("localhost.example.org"));
    }
}
