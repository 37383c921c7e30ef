//! Forwarding: one request from a client to a Space's upstream and back.
//!
//! Order of checks: header size, host, route, access, body size, wake, then
//! the exchange. Requests go to upstreams over pooled HTTP/1.1 whatever the
//! client spoke; hop-by-hop headers (the fixed list and every name listed in
//! `Connection`) are removed both ways; X-Forwarded-For/Host/Proto/Prefix and
//! `Forwarded` are set (client-sent values are replaced unless the proxy is
//! told to trust a load balancer in front); bodies stream frame by frame
//! (SSE is never buffered); `Upgrade` requests (WebSocket) become a tunnel
//! copying bytes both ways. Failures become pages through
//! [`crate::pages::Failure`]; this module must not render pages itself.

use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_TYPE, FORWARDED, HOST, LOCATION, SET_COOKIE, UPGRADE, USER_AGENT,
};
use http::uri::{Authority, PathAndQuery};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;

use crate::access::{self, Decision};
use crate::balance::{self, Lease};
use crate::idle::{ActiveGuard, IdleTracker};
use crate::limits;
use crate::meter::{self, SpaceMeter};
use crate::origin;
use crate::pages::Failure;
use crate::route::Visibility;
use crate::route::{CompiledRoute, Resolution};
use crate::server::Shared;
use crate::upstream::{self, Reuse, SendError};
use crate::wake::{self, Outcome};

/// Errors of any body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the proxy passes on.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// The request id header, set on the upstream request and the response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Headers that describe one connection, not the message.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Facts about the client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer address.
    pub peer: SocketAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
}

/// [`HOP_BY_HOP`], parsed once.
static HOP_BY_HOP_NAMES: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    UPGRADE,
];

/// Whether `name` is in [`HOP_BY_HOP`]: by length first, since every
/// message's names pass through here.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(n.len(), 2 | 7 | 10 | 16 | 17 | 18 | 19) && HOP_BY_HOP.contains(&n)
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names settles it.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        // Names beyond the fixed list; usually none ("keep-alive", "close").
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .filter(|n| !HOP_BY_HOP_NAMES.contains(n))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP_NAMES {
        headers.remove(name);
    }
}

/// Whether the request asks to switch protocols (HTTP/1.1 `Upgrade`).
pub fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The host a request is for, without port, lowercased. The Host header and
/// the request target's authority (HTTP/2 `:authority`, or an absolute-form
/// HTTP/1 target) must agree, so neither can smuggle in another Space.
pub fn request_host(uri: &Uri, headers: &HeaderMap) -> Result<(String, Authority), Failure> {
    let mut hosts = headers.get_all(HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(raw), None) => Some(
            Authority::from_maybe_shared(Bytes::copy_from_slice(raw.as_bytes()))
                .map_err(|_| Failure::BadRequest("invalid Host header"))?,
        ),
        (Some(_), Some(_)) => return Err(Failure::BadRequest("more than one Host header")),
    };
    let target = uri.authority().cloned();
    let authority = match (header, target) {
        (Some(h), Some(t)) => {
            if !h.host().eq_ignore_ascii_case(t.host()) || h.port_u16() != t.port_u16() {
                return Err(Failure::BadRequest(
                    "the Host header does not match the request target",
                ));
            }
            h
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(Failure::BadRequest("missing Host header")),
    };
    if authority.as_str().contains('@') {
        return Err(Failure::BadRequest("invalid Host header"));
    }
    Ok((
        authority.host().trim_end_matches('.').to_ascii_lowercase(),
        authority,
    ))
}

/// A request id: the client's if it is short and plain, else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        {
            return v.clone();
        }
    }
    // 64 random bits per process and a counter: unique, and far cheaper
    // than hashing per request (ids need not be unpredictable).
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 32];
    hex_u64(prefix, &mut out[..16]);
    hex_u64(n, &mut out[16..]);
    HeaderValue::from_bytes(&out).expect("hex is a valid header value")
}

fn hex_u64(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate().take(16) {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Sets X-Forwarded-* and `Forwarded` for the upstream.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    host: &Authority,
    proto: &str,
    prefix: Option<&str>,
    trust: bool,
) {
    // Untrusted, the client's values are replaced without being read.
    let prev = |h: &HeaderMap, name: &HeaderName| {
        trust
            .then(|| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned))
            .flatten()
    };
    let proto = match prev(headers, &X_FORWARDED_PROTO).as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        _ => proto,
    };
    let client_s = ip_string(client);
    let mut fwd = String::with_capacity(32 + client_s.len() + host.as_str().len());
    if let Some(prev) = prev(headers, &FORWARDED) {
        fwd.push_str(&prev);
        fwd.push_str(", ");
    }
    fwd.push_str("for=");
    match client {
        IpAddr::V4(_) => fwd.push_str(&client_s),
        IpAddr::V6(_) => {
            fwd.push_str("\"[");
            fwd.push_str(&client_s);
            fwd.push_str("]\"");
        }
    }
    fwd.push_str(";host=\"");
    fwd.push_str(host.as_str());
    fwd.push_str("\";proto=");
    fwd.push_str(proto);
    let xff = match prev(headers, &X_FORWARDED_FOR) {
        Some(prev) => [&prev, ", ", &client_s].concat(),
        None => client_s,
    };
    let keep_host = trust && headers.contains_key(&X_FORWARDED_HOST);
    let set = |h: &mut HeaderMap, k: &HeaderName, v: String| {
        if let Ok(v) = HeaderValue::try_from(v) {
            h.insert(k.clone(), v);
        }
    };
    set(headers, &X_FORWARDED_FOR, xff);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if proto == "https" { "https" } else { "http" }),
    );
    set(headers, &FORWARDED, fwd);
    if !keep_host {
        set(headers, &X_FORWARDED_HOST, host.as_str().to_owned());
    }
    match prefix {
        Some(p) => set(headers, &X_FORWARDED_PREFIX, p.to_owned()),
        None => {
            headers.remove(&X_FORWARDED_PREFIX);
        }
    }
}

/// The address as text; IPv4 without the formatting machinery (it runs
/// for every request).
fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if octet >= 100 {
                    s.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    s.push(char::from(b'0' + octet / 10 % 10));
                }
                s.push(char::from(b'0' + octet % 10));
            }
            s
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The client address used for metering: the peer, or the last hop a trusted
/// load balancer appended.
fn client_ip(headers: &HeaderMap, peer: IpAddr, trust: bool) -> IpAddr {
    if trust
        && let Some(last) = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|s| s.trim().parse().ok())
    {
        return last;
    }
    peer
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The request body exceeded the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body is over the limit of {0} bytes")]
pub struct BodyTooLarge(u64);

struct StreamGuard {
    _active: ActiveGuard,
    gauge: Option<prometheus::IntGauge>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

fn stream_guard(idle: &Arc<IdleTracker>, meter: Option<&Arc<SpaceMeter>>) -> StreamGuard {
    let gauge = meter.map(|m| m.open_streams().clone());
    if let Some(g) = &gauge {
        g.inc();
    }
    StreamGuard {
        _active: idle.stream(),
        gauge,
    }
}

/// A body passed through: counts bytes, marks activity, enforces a limit,
/// and holds guards (replica lease, in-flight or open-stream marks) until it
/// ends.
struct Observed<B> {
    inner: B,
    meter: Option<Arc<SpaceMeter>>,
    idle: Arc<IdleTracker>,
    inbound: bool,
    limit: Option<u64>,
    seen: u64,
    /// The upstream connection, pooled again once the body has ended.
    reuse: Option<Reuse>,
    _lease: Option<Lease>,
    _active: Option<ActiveGuard>,
    _stream: Option<StreamGuard>,
}

impl<B> Observed<B> {
    fn release(&mut self) {
        if let Some(r) = self.reuse.take() {
            r.release();
        }
    }
}

impl<B> Body for Observed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    if let Some(limit) = this.limit
                        && this.seen > limit
                    {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
                    }
                    if let Some(m) = &this.meter {
                        if this.inbound {
                            m.bytes_in(n)
                        } else {
                            m.bytes_out(n)
                        }
                    }
                    this.idle.touch();
                }
                if this.inner.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.reuse = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn caused_by_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTooLarge>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

/// Sends one GET to `authority` and says whether it answered below 500.
pub(crate) async fn probe(
    shared: &Shared,
    authority: &Authority,
    path: &str,
    timeout: Duration,
) -> bool {
    let Ok(pq) = path.parse::<PathAndQuery>() else {
        return false;
    };
    let req = Request::get(Uri::from(pq))
        .header(HOST, authority.as_str())
        .header(USER_AGENT, "spaceport-proxy health probe")
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .expect("valid probe");
    let sent = upstream::send(authority, req, false, shared.config.timeouts.connect);
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok((resp, _))) => resp.status().as_u16() < 500,
        _ => false,
    }
}

fn text_response(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Handles one client request end to end. Never fails: every error becomes
/// a response.
pub(crate) async fn handle<B>(
    shared: Arc<Shared>,
    req: Request<B>,
    conn: ConnInfo,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let id = request_id(req.headers());
    let html = wants_html(req.headers());
    let mut resp = match route_and_forward(&shared, req, conn, &id, html).await {
        Ok(r) => r,
        Err(f) => f.response(html),
    };
    resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
    resp
}

async fn route_and_forward<B>(
    shared: &Arc<Shared>,
    req: Request<B>,
    conn: ConnInfo,
    id: &HeaderValue,
    html: bool,
) -> Result<Response<ProxyBody>, Failure>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let start = Instant::now();
    let cfg = &shared.config;
    if limits::header_bytes(req.headers()) > cfg.limits.max_header_bytes {
        return Err(Failure::HeadersTooLarge);
    }
    let (host, authority) = request_host(req.uri(), req.headers())?;
    let table = shared.table.load();
    let (route, prefix_len): (Arc<CompiledRoute>, usize) =
        match table.resolve(&host, req.uri().path()) {
            Resolution::Host(r) => (r.clone(), 0),
            Resolution::Prefix { route, prefix_len } => (route.clone(), prefix_len),
            Resolution::AddSlash => {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(PathAndQuery::as_str)
                    .unwrap_or("/");
                let (p, q) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
                let loc = match q {
                    Some(q) => format!("{p}/?{q}"),
                    None => format!("{p}/"),
                };
                let mut r = text_response(StatusCode::PERMANENT_REDIRECT, "moved\n");
                if let Ok(v) = HeaderValue::try_from(loc) {
                    r.headers_mut().insert(LOCATION, v);
                }
                return Ok(r);
            }
            Resolution::NotFound if req.uri().path() == "/healthz" => {
                return Ok(text_response(StatusCode::OK, "ok\n"));
            }
            Resolution::NotFound | Resolution::UnknownSpaceHost => {
                shared.meter.unrouted.inc();
                return Err(Failure::NotFound);
            }
        };
    drop(table);
    let rt = route.runtime.clone();
    let space = &rt.space;
    let path_routed = prefix_len > 0;
    if !path_routed
        && route.route.visibility == Visibility::Private
        && let Some(resp) = Box::pin(sign_in_app(shared, &req, space, &host)).await
    {
        return Ok(resp);
    }
    let decision = access::decide(
        shared.access.as_ref(),
        space,
        route.route.visibility,
        req.headers(),
        (!path_routed).then_some(cfg.app_cookie.as_str()),
        client_ip(req.headers(), conn.peer.ip(), cfg.trust_forwarded),
    )
    .await;
    let Decision::Allow {
        strip_authorization,
    } = decision
    else {
        shared.meter.unrouted.inc();
        return Err(Failure::NotFound);
    };
    // Boxed: the exchange is most of this future, and a future is copied
    // whole at each level it is awaited through; one allocation copies less.
    let result = Box::pin(exchange(
        shared,
        req,
        conn,
        id,
        &route,
        prefix_len,
        &authority,
        strip_authorization,
        html,
        start,
    ))
    .await;
    if let Err(f) = &result {
        // Failures the proxy answers for a known Space count in its metrics too.
        if cfg.metering {
            rt.meter.response(f.status(), start.elapsed());
        }
    }
    result
}

/// The part of a request after routing and access: body limit, wake, the
/// upstream exchange, and the response.
#[allow(
    clippy::too_many_arguments,
    reason = "the request's facts, passed once"
)]
async fn exchange<B>(
    shared: &Arc<Shared>,
    mut req: Request<B>,
    conn: ConnInfo,
    id: &HeaderValue,
    route: &Arc<CompiledRoute>,
    prefix_len: usize,
    authority: &Authority,
    strip_authorization: bool,
    html: bool,
    start: Instant,
) -> Result<Response<ProxyBody>, Failure>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let cfg = &shared.config;
    let rt = route.runtime.clone();
    let space = &rt.space;
    if limits::content_length(req.headers()).is_some_and(|n| n > cfg.limits.max_body_bytes) {
        return Err(Failure::BodyTooLarge);
    }
    let metering = cfg.metering;
    let meter = metering.then(|| rt.meter.clone());
    let in_flight = rt.idle.request();

    if !rt.running() {
        let browser = html && req.method() == Method::GET;
        let hold = if browser {
            cfg.wake.browser_hold
        } else {
            cfg.wake.api_hold
        };
        // Boxed: a rare path, kept out of every request's future.
        match Box::pin(wake::await_awake(shared, route, hold)).await {
            Outcome::Ready => {}
            Outcome::StillWaking if browser => {
                return Err(Failure::Waking {
                    space: space.clone(),
                    refresh: cfg.wake.retry_after,
                });
            }
            Outcome::StillWaking => {
                return Err(Failure::Unavailable {
                    space: space.clone(),
                    reason: "the Space is waking up; try again shortly".into(),
                    retry_after: cfg.wake.retry_after,
                });
            }
            Outcome::Failed(why) => {
                return Err(Failure::Unavailable {
                    space: space.clone(),
                    reason: format!("the Space could not be started: {why}"),
                    retry_after: cfg.wake.retry_after,
                });
            }
        }
    }

    let upgrade = is_upgrade(req.version(), req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    let visit_candidate = metering
        && meter::is_visit_request(&method, &parts.uri.path()[prefix_len..], &parts.headers);
    let user_agent = if visit_candidate {
        parts
            .headers
            .get(USER_AGENT)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let upgrade_value = parts.headers.get(UPGRADE).cloned();
    let sticky = balance::sticky_from(&parts.headers).map(str::to_owned);
    let headers = &mut parts.headers;
    // Room for the forwarded headers and the request id, in one growth.
    headers.reserve(6);
    strip_hop_by_hop(headers);
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = upgrade_value {
            headers.insert(UPGRADE, u);
        }
    }
    let shared_origin = prefix_len > 0 && cfg.sandbox_path_routes;
    if shared_origin {
        // A path route shares its origin: none of its cookies are the app's.
        headers.remove(http::header::COOKIE);
    } else {
        origin::strip_cookies(headers, &shared.reserved_cookies);
    }
    if strip_authorization {
        headers.remove(http::header::AUTHORIZATION);
    }
    let pq = parts
        .uri
        .path_and_query()
        .map(PathAndQuery::as_str)
        .unwrap_or("/");
    let prefix = (prefix_len > 0).then(|| &pq[..prefix_len]);
    let upstream_pq: PathAndQuery = pq[prefix_len..]
        .parse()
        .map_err(|_| Failure::BadRequest("invalid request target"))?;
    let proto = if conn.tls { "https" } else { "http" };
    let ip = client_ip(headers, conn.peer.ip(), cfg.trust_forwarded);
    set_forwarded(
        headers,
        conn.peer.ip(),
        authority,
        proto,
        prefix,
        cfg.trust_forwarded,
    );
    let sticky_path = prefix.map_or_else(|| "/".to_owned(), |p| format!("{p}/"));
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    // A Host header, when sent, is the authority already (checked in
    // request_host); HTTP/2 clients send :authority instead.
    if !headers.contains_key(HOST) {
        headers.insert(
            HOST,
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| Failure::BadRequest("invalid Host header"))?,
        );
    }
    parts.version = Version::HTTP_11;

    let bodiless = body.is_end_stream();
    let upload = Observed {
        inner: body,
        meter: meter.clone(),
        idle: rt.idle.clone(),
        inbound: true,
        limit: Some(cfg.limits.max_body_bytes),
        seen: 0,
        reuse: None,
        _lease: None,
        _active: None,
        _stream: None,
    };
    let mut pending_body = Some(BodyExt::boxed(upload));
    let mut parts = Some(parts);
    let mut avoid = None;
    let mut attempt = 0;
    let (lease, resp, reuse) = loop {
        attempt += 1;
        let lease = rt
            .balancer
            .pick(sticky.as_deref(), avoid.as_deref())
            .ok_or_else(|| Failure::Unavailable {
                space: space.clone(),
                reason: "the Space has no running replica".into(),
                retry_after: cfg.wake.retry_after,
            })?;
        let body = match pending_body.take() {
            Some(b) => b,
            None => Empty::new().map_err(|e| match e {}).boxed(),
        };
        // Only a bodiless request to a multi-replica Space may be retried, so
        // only then is the head copied.
        let head = match parts.take() {
            Some(p) => {
                if bodiless && rt.balancer.len() > 1 {
                    parts = Some(p.clone_head());
                }
                p
            }
            None => {
                return Err(Failure::BadGateway(
                    space.clone(),
                    "could not connect to the app".into(),
                ));
            }
        };
        let mut up = Request::from_parts(head, body);
        *up.uri_mut() = Uri::from(upstream_pq.clone());
        let sent = tokio::time::timeout(
            cfg.timeouts.response_head,
            upstream::send(
                lease.endpoint().authority(),
                up,
                upgrade,
                cfg.timeouts.connect,
            ),
        )
        .await;
        match sent {
            Ok(Ok((resp, reuse))) => break (lease, resp, reuse),
            Err(_) => {
                return Err(Failure::GatewayTimeout(
                    space.clone(),
                    format!("no response within {:?}", cfg.timeouts.response_head),
                ));
            }
            Ok(Err(SendError::Http(e))) => {
                if caused_by_limit(&e) {
                    return Err(Failure::BodyTooLarge);
                }
                return Err(Failure::BadGateway(space.clone(), describe(&e)));
            }
            Ok(Err(e @ SendError::Protocol(_))) => {
                return Err(Failure::BadGateway(space.clone(), e.to_string()));
            }
            Ok(Err(e @ SendError::Connect(_))) => {
                let backoff = lease.endpoint().failed();
                rt.meter.ejected();
                tracing::warn!(space = %space, upstream = %lease.endpoint().authority(), ?backoff, error = %e, "upstream ejected");
                if bodiless && attempt < 2 && rt.balancer.len() > 1 {
                    avoid = Some(lease.endpoint().clone());
                    continue;
                }
                return Err(Failure::BadGateway(
                    space.clone(),
                    "could not connect to the app".into(),
                ));
            }
        }
    };
    lease.endpoint().succeeded();
    let mut resp = resp;
    // The upgrade handle lives in the response's extensions: take it first.
    let upstream_upgrade =
        (resp.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut resp));
    let (mut rparts, rbody) = resp.into_parts();
    let status = rparts.status;
    if let Some(m) = &meter {
        m.response(status, start.elapsed());
    }

    if let Some(upstream_upgrade) = upstream_upgrade {
        let Some(client_upgrade) = client_upgrade else {
            return Err(Failure::BadGateway(
                space.clone(),
                "the app switched protocols unasked".into(),
            ));
        };
        // The connection becomes the tunnel and is never pooled again; its
        // sender (and the request channel it keeps allocated, about 8 KB)
        // goes now, not when the tunnel closes.
        drop(reuse);
        let guard = stream_guard(&rt.idle, meter.as_ref());
        let tunnel_meter = meter.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _lease = lease;
            // From here on the tunnel counts as an open stream, not a request.
            drop(in_flight);
            let (Ok(c), Ok(u)) = tokio::join!(client_upgrade, upstream_upgrade) else {
                return;
            };
            let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
            if let Ok((up, down)) =
                tokio::io::copy_bidirectional_with_sizes(&mut c, &mut u, 2048, 2048).await
                && let Some(m) = tunnel_meter
            {
                m.bytes_in(up);
                m.bytes_out(down);
            }
        });
        route.headers.apply(&mut rparts.headers);
        confine(&mut rparts.headers, shared_origin, &shared.reserved_cookies);
        return Ok(Response::from_parts(
            rparts,
            Empty::new().map_err(|e| match e {}).boxed(),
        ));
    }

    strip_hop_by_hop(&mut rparts.headers);
    route.headers.apply(&mut rparts.headers);
    confine(&mut rparts.headers, shared_origin, &shared.reserved_cookies);
    if visit_candidate
        && let Some(m) = &meter
        && meter::is_visit_response(status, &rparts.headers)
    {
        m.visit(ip, &user_agent);
    }
    if rt.balancer.len() > 1 && sticky.as_deref() != Some(lease.endpoint().id()) {
        let cookie = format!(
            "{}={}; Path={sticky_path}; HttpOnly; SameSite=Lax",
            balance::STICKY_COOKIE,
            lease.endpoint().id()
        );
        if let Ok(v) = HeaderValue::try_from(cookie) {
            rparts.headers.append(SET_COOKIE, v);
        }
    }
    let is_stream = rparts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut download = Observed {
        inner: rbody,
        meter,
        idle: rt.idle.clone(),
        inbound: false,
        limit: None,
        seen: 0,
        reuse,
        _lease: Some(lease),
        _active: Some(in_flight),
        _stream: is_stream.then(|| stream_guard(&rt.idle, metering.then_some(&rt.meter))),
    };
    if download.inner.is_end_stream() {
        // Nothing to read (HEAD, 204, 304): the connection is free now.
        download.release();
    }
    Ok(Response::from_parts(rparts, download.boxed()))
}

/// What an app's response may carry back to the browser: on a path route
/// (a shared origin) no cookies and a sandboxed document; on its own host
/// no cookie of the hub's or the proxy's, and none scoped by `Domain`.
fn confine(headers: &mut HeaderMap, shared_origin: bool, reserved: &[String]) {
    if shared_origin {
        origin::sandbox_path_response(headers);
    } else {
        origin::confine_set_cookies(headers, reserved);
    }
}

/// A private app opened with a hub ticket (`?__sign=`): when the checker
/// accepts it, the answer is a redirect to the same URL without the ticket
/// that sets the app cookie on this host. `None`: no ticket, or not a valid
/// one (the request goes on and is judged without it).
async fn sign_in_app<B>(
    shared: &Arc<Shared>,
    req: &Request<B>,
    space: &crate::route::SpaceId,
    host: &str,
) -> Option<Response<ProxyBody>> {
    let query = req.uri().query()?;
    let (ticket, rest) = origin::take_sign_param(query)?;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let pass = shared.access.exchange(space, ticket).await?;
    let location = match rest {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    let secure = origin::is_localhost(host) || req.uri().scheme_str() == Some("https");
    let cookie = origin::app_cookie(
        &shared.config.app_cookie,
        &pass.value,
        pass.max_age.as_secs(),
        secure,
    );
    let mut r = text_response(StatusCode::SEE_OTHER, "signed in\n");
    let (Ok(loc), Ok(c)) = (
        HeaderValue::try_from(location),
        HeaderValue::try_from(cookie),
    ) else {
        return None;
    };
    r.headers_mut().insert(LOCATION, loc);
    r.headers_mut().insert(SET_COOKIE, c);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(r)
}

trait CloneHead {
    fn clone_head(&self) -> Self;
}

impl CloneHead for http::request::Parts {
    fn clone_head(&self) -> Self {
        let mut r = Request::new(());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.clone();
        r.into_parts().0
    }
}

/// Adapts [`handle`] to a hyper service for one connection.
/// Whether a request names no Space: neither a Space host (known or not)
/// nor a path prefix of one. Malformed hosts stay with the proxy, which
/// refuses them.
fn names_no_space<B>(shared: &Shared, req: &Request<B>) -> bool {
    match request_host(req.uri(), req.headers()) {
        Ok((host, _)) => matches!(
            shared.table.load().resolve(&host, req.uri().path()),
            Resolution::NotFound
        ),
        Err(_) => false,
    }
}

pub(crate) fn service(
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            if let Some(fallback) = &shared.fallback
                && names_no_space(&shared, &req)
            {
                return Ok(fallback.call(req, conn).await);
            }
            Ok(handle(shared, req, conn).await)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_headers_named_in_connection() {
        let mut h = hdrs(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("x-app", "stays"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-app"], "stays");
    }

    #[test]
    fn host_and_target_must_agree() {
        let h = hdrs(&[("host", "alice-demo.spaces.test")]);
        let (host, _) = request_host(&"/x".parse().unwrap(), &h).unwrap();
        assert_eq!(host, "alice-demo.spaces.test");
        let abs: Uri = "http://bob-secret.spaces.test/x".parse().unwrap();
        assert!(request_host(&abs, &h).is_err());
        let two = hdrs(&[("host", "a.test"), ("host", "b.test")]);
        assert!(request_host(&"/".parse().unwrap(), &two).is_err());
        assert!(request_host(&"/".parse().unwrap(), &HeaderMap::new()).is_err());
        let (host, _) =
            request_host(&"/".parse().unwrap(), &hdrs(&[("host", "A.Test.:8080")])).unwrap();
        assert_eq!(host, "a.test");
    }

    #[test]
    fn forwarded_headers_replace_client_values_unless_trusted() {
        let mut h = hdrs(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-prefix", "/x"),
        ]);
        let host: Authority = "a-b.spaces.test".parse().unwrap();
        set_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            &host,
            "https",
            None,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-host"], "a-b.spaces.test");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("x-forwarded-prefix").is_none());
        assert_eq!(
            h["forwarded"],
            "for=10.0.0.1;host=\"a-b.spaces.test\";proto=https"
        );
        let mut t = hdrs(&[("x-forwarded-for", "1.2.3.4")]);
        set_forwarded(
            &mut t,
            "::1".parse().unwrap(),
            &host,
            "http",
            Some("/apps/a/b"),
            true,
        );
        assert_eq!(t["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(t["x-forwarded-prefix"], "/apps/a/b");
        assert!(
            t["forwarded"]
                .to_str()
                .unwrap()
                .starts_with("for=\"[::1]\"")
        );
    }

    #[test]
    fn addresses_are_written_as_text() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "8.8.4.4",
            "::1",
            "fe80::1",
        ] {
            assert_eq!(ip_string(ip.parse().unwrap()), ip);
        }
    }

    #[test]
    fn request_ids_are_kept_when_plain_and_made_otherwise() {
        assert_eq!(request_id(&hdrs(&[("x-request-id", "abc-123")])), "abc-123");
        let made = request_id(&hdrs(&[("x-request-id", "has space")]));
        assert_eq!(made.len(), 32);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn the_hop_by_hop_check_knows_exactly_the_list() {
        for name in HOP_BY_HOP_NAMES.iter() {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "host",
            "x-upgrade",
            "tk",
            "trailers",
            "connections",
            "cookie",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn upgrade_needs_connection_upgrade_on_http11() {
        let h = hdrs(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade(Version::HTTP_11, &h));
        assert!(!is_upgrade(Version::HTTP_2, &h));
        assert!(!is_upgrade(
            Version::HTTP_11,
            &hdrs(&[("upgrade", "websocket")])
        ));
    }
}
