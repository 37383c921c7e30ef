//! Fuzzes host/path routing and header handling with the invariants that
//! keep one Space from reaching another:
//! - a host route only ever matches the Space whose label is the host's label;
//! - a prefix route only matches `/apps/<owner>/<name>/` of that Space;
//! - after stripping, no hop-by-hop header nor one named in Connection remains;
//! - after removing the token cookie, it cannot be found again;
//! - nothing panics on any bytes.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use spaceport_proxy::route::Resolution;
use spaceport_proxy::{Route, RouteTable, access, forward};

fn table() -> &'static RouteTable {
    static T: OnceLock<RouteTable> = OnceLock::new();
    T.get_or_init(|| {
        let routes = [
            "alice/demo",
            "Alice_B/My.App",
            "bob/secret",
            "x/y",
            "a-b/c",
            "org/app.v2",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| Route::new(s.parse().unwrap(), format!("127.0.0.1:{}", 1000 + i)))
        .collect();
        RouteTable::standalone(routes, Some("spaces.test"), "/apps").unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let host = lines.next().unwrap_or("");
    let target = lines.next().unwrap_or("/");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.append(http::header::HOST, v);
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let t = table();
    let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/"));
    if let Ok((host, _authority)) = forward::request_host(&uri, &headers) {
        let path = uri.path();
        match t.resolve(&host, path) {
            Resolution::Host(r) => {
                let label = host
                    .strip_suffix(".spaces.test")
                    .expect("host route under the domain");
                assert_eq!(r.route().space.host_label(), label);
            }
            Resolution::Prefix { route, prefix_len } => {
                assert!(!t.is_space_host(&host));
                let want = format!("/apps/{}", route.route().space).to_ascii_lowercase();
                assert_eq!(path[..prefix_len].to_ascii_lowercase(), want);
                assert_eq!(path.as_bytes()[prefix_len], b'/');
            }
            Resolution::AddSlash | Resolution::NotFound | Resolution::UnknownSpaceHost => {}
        }
    }
    let _ = t.resolve(host, target);

    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut stripped = headers.clone();
    forward::strip_hop_by_hop(&mut stripped);
    for h in spaceport_proxy::forward::HOP_BY_HOP {
        assert!(!stripped.contains_key(h));
    }
    for n in named {
        if let Ok(n) = HeaderName::from_bytes(n.as_bytes()) {
            assert!(!stripped.contains_key(n));
        }
    }
    if let Ok(a) = "alice-demo.spaces.test".parse() {
        forward::set_forwarded(
            &mut stripped,
            "127.0.0.1".parse().unwrap(),
            &a,
            "http",
            Some("/apps/a/b"),
            true,
        );
    }
    let _ = forward::request_id(&headers);
    let _ = access::token(&headers, Some(access::APP_COOKIE));
    let mut cookies = headers.clone();
    access::remove_cookie(&mut cookies, access::TOKEN_COOKIE);
    assert!(access::cookie(&cookies, access::TOKEN_COOKIE).is_none());
});
