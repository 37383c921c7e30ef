//! Metering: what each Space served, exported to Prometheus and to an
//! [`AnalyticsSink`].
//!
//! Per Space: visits (page views, see [`is_visit`]), unique visitors per UTC
//! day, requests by status class, body bytes in and out, time to response
//! head, open streams, requests held for a wake, wakes and wake latency.
//! Unique visitors are counted without storing addresses: the client address
//! and user agent are hashed together with a secret and the day number, and
//! only the hash's HyperLogLog rank is kept ([`HyperLogLog`], 4096 one-byte
//! registers, about 1.6% standard error). Sketches of the same day and secret
//! merge by register-wise maximum, so proxy replicas can be combined. This
//! module counts; it must not block the request path (no locks except on a
//! visit, no I/O).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::route::{BoxFuture, SpaceId};

const P: u32 = 12;
const M: usize = 1 << P;

/// A HyperLogLog cardinality sketch with 2^12 registers.
#[derive(Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    registers: Box<[u8; M]>,
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HyperLogLog(~{})", self.estimate())
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self {
            registers: Box::new([0; M]),
        }
    }
}

impl HyperLogLog {
    /// Adds a 64-bit hash (already uniformly distributed).
    pub fn add_hash(&mut self, hash: u64) {
        let idx = usize::try_from(hash >> (64 - P)).expect("12 bits fit");
        let rest = (hash << P) | (1 << (P - 1));
        let rank = u8::try_from(rest.leading_zeros() + 1).expect("at most 53");
        if rank > self.registers[idx] {
            self.registers[idx] = rank;
        }
    }

    /// Estimated number of distinct hashes added.
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            sum += 1.0 / f64::from(1u32 << r.min(31));
            if r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }

    /// Folds another sketch in: the result estimates the union.
    pub fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// The registers, for storage or sending to another replica.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.registers.to_vec()
    }

    /// Reads registers written by [`HyperLogLog::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let registers: Box<[u8; M]> = bytes.to_vec().into_boxed_slice().try_into().ok()?;
        registers
            .iter()
            .all(|&r| r <= 64 - P as u8 + 1)
            .then_some(Self { registers })
    }
}

/// Days since 1970-01-01 UTC.
pub fn utc_day(now: SystemTime) -> u32 {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
}

/// Turns a visitor into an anonymous hash that changes every day.
#[derive(Clone)]
pub struct VisitorHasher {
    secret: [u8; 32],
}

impl std::fmt::Debug for VisitorHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorHasher(..)")
    }
}

impl VisitorHasher {
    /// With a secret shared by all proxy replicas whose sketches are merged.
    pub fn new(secret: &[u8]) -> Self {
        let mut s = [0u8; 32];
        // Spread a secret of any length over 32 bytes.
        for (i, b) in secret.iter().enumerate() {
            s[i % 32] = s[i % 32].rotate_left(3) ^ b;
        }
        Self { secret: s }
    }

    /// A random secret: sketches of this process only.
    pub fn random() -> Self {
        let mut bytes = Vec::with_capacity(32);
        for i in 0..4u64 {
            let h = std::collections::hash_map::RandomState::new().hash_one(i);
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        Self::new(&bytes)
    }

    /// The day's hash of a visitor.
    pub fn hash(&self, day: u32, ip: IpAddr, user_agent: &[u8]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.secret.hash(&mut h);
        day.hash(&mut h);
        ip.hash(&mut h);
        user_agent.hash(&mut h);
        h.finish()
    }
}

const ASSET_EXTENSIONS: &[&str] = &[
    "js", "mjs", "css", "map", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "woff",
    "woff2", "ttf", "otf", "eot", "json", "txt", "xml", "wasm", "mp3", "mp4", "webm", "wav", "pdf",
];

/// Path segments of framework traffic that is never a page view: Gradio's
/// queue and API, Streamlit's internal endpoints, health checks.
const POLL_SEGMENTS: &[&str] = &[
    "queue",
    "gradio_api",
    "_stcore",
    "heartbeat",
    "healthz",
    "health",
    "api",
    "static",
    "assets",
    "upload",
    "config",
    "info",
];

/// The visit rule: a successful GET of an HTML document. Asset fetches,
/// XHR/fetch polls, WebSocket upgrades, framework endpoints and errors are
/// not visits. `Sec-Fetch-Dest` decides when the browser sends it (a page or
/// an embed's iframe counts); otherwise the request must accept HTML. The
/// response must be a 2xx HTML document. `path` is the app's path (any
/// `/apps/<owner>/<name>` prefix already removed).
pub fn is_visit(
    method: &Method,
    path: &str,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
) -> bool {
    is_visit_request(method, path, req) && is_visit_response(status, resp)
}

/// The request half of [`is_visit`], decided before the request is sent.
pub fn is_visit_request(method: &Method, path: &str, req: &HeaderMap) -> bool {
    if method != Method::GET || req.contains_key(http::header::UPGRADE) {
        return false;
    }
    let path = path.split('?').next().unwrap_or(path);
    let last = path.rsplit('/').next().unwrap_or("");
    if let Some((_, ext)) = last.rsplit_once('.')
        && ASSET_EXTENSIONS.iter().any(|a| ext.eq_ignore_ascii_case(a))
    {
        return false;
    }
    if path
        .split('/')
        .any(|seg| seg.starts_with("file=") || POLL_SEGMENTS.contains(&seg))
    {
        return false;
    }
    if let Some(dest) = req.get("sec-fetch-dest").and_then(|v| v.to_str().ok()) {
        return dest == "document" || dest == "iframe";
    }
    req.get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The response half of [`is_visit`].
pub fn is_visit_response(status: StatusCode, resp: &HeaderMap) -> bool {
    status.is_success()
        && resp
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// One Space's counters for a period, as handed to the [`AnalyticsSink`].
#[derive(Debug, Clone)]
pub struct SpaceReport {
    /// The Space.
    pub space: SpaceId,
    /// UTC day number the sketch belongs to.
    pub day: u32,
    /// Page views since the previous report.
    pub visits: u64,
    /// Responses by status class (1xx..5xx) since the previous report.
    pub requests_by_class: [u64; 5],
    /// Request body bytes since the previous report.
    pub bytes_in: u64,
    /// Response body bytes since the previous report.
    pub bytes_out: u64,
    /// Wakes since the previous report.
    pub wakes: u64,
    /// The day's unique-visitor sketch so far (merge with max; not a delta).
    pub unique_visitors: HyperLogLog,
}

/// Where reports go. The runtime stores them (per Space, per day); a cluster
/// sums reports from all proxy replicas and merges their sketches. Called
/// from a background task every flush interval, never on the request path.
pub trait AnalyticsSink: Send + Sync + 'static {
    /// Takes one batch of reports.
    fn record(&self, reports: Vec<SpaceReport>) -> BoxFuture<'_, ()>;
}

/// Discards reports. The default.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl AnalyticsSink for NoSink {
    fn record(&self, _: Vec<SpaceReport>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[derive(Debug, Default)]
struct Flushed {
    visits: u64,
    classes: [u64; 5],
    bytes_in: u64,
    bytes_out: u64,
    wakes: u64,
}

#[derive(Debug)]
struct DaySketch {
    day: u32,
    hll: HyperLogLog,
    finished: Vec<(u32, HyperLogLog)>,
}

/// One Space's metric handles, resolved once so the request path does no
/// label lookups.
#[derive(Debug)]
pub struct SpaceMeter {
    space: SpaceId,
    classes: [IntCounter; 5],
    visits: IntCounter,
    unique: IntGauge,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    duration: Histogram,
    open_streams: IntGauge,
    waiting: IntGauge,
    wakes_ok: IntCounter,
    wakes_failed: IntCounter,
    wake_duration: Histogram,
    ejections: IntCounter,
    sketch: Mutex<DaySketch>,
    flushed: Mutex<Flushed>,
    hasher: VisitorHasher,
}

impl SpaceMeter {
    /// Counts a finished response head.
    pub fn response(&self, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.classes[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a page view by this visitor.
    pub fn visit(&self, ip: IpAddr, user_agent: &[u8]) {
        self.visits.inc();
        let day = utc_day(SystemTime::now());
        let hash = self.hasher.hash(day, ip, user_agent);
        let mut s = self.sketch.lock().expect("sketch lock");
        if s.day != day {
            let old = std::mem::take(&mut s.hll);
            let old_day = s.day;
            s.finished.push((old_day, old));
            s.day = day;
        }
        s.hll.add_hash(hash);
    }

    /// Request body bytes.
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.inc_by(n);
    }

    /// Response body bytes.
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.inc_by(n);
    }

    /// The open-streams gauge.
    pub fn open_streams(&self) -> &IntGauge {
        &self.open_streams
    }

    /// The requests-held-for-wake gauge.
    pub fn waiting(&self) -> &IntGauge {
        &self.waiting
    }

    /// Counts a finished wake.
    pub fn wake(&self, ok: bool, elapsed: Duration) {
        if ok {
            &self.wakes_ok
        } else {
            &self.wakes_failed
        }
        .inc();
        self.wake_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts an upstream ejection.
    pub fn ejected(&self) {
        self.ejections.inc();
    }

    /// Today's unique-visitor estimate.
    pub fn unique_today(&self) -> u64 {
        self.sketch.lock().expect("sketch lock").hll.estimate()
    }

    /// Total visits so far.
    pub fn visits(&self) -> u64 {
        self.visits.get()
    }

    fn reports(&self) -> Vec<SpaceReport> {
        let mut f = self.flushed.lock().expect("flush lock");
        let classes = std::array::from_fn(|i| self.classes[i].get());
        let wakes = self.wakes_ok.get() + self.wakes_failed.get();
        let mut s = self.sketch.lock().expect("sketch lock");
        let mut reports: Vec<SpaceReport> = s
            .finished
            .drain(..)
            .map(|(day, hll)| self.report(day, hll, [0; 5], 0, 0, 0, 0))
            .collect();
        reports.push(self.report(
            s.day,
            s.hll.clone(),
            std::array::from_fn(|i| classes[i] - f.classes[i]),
            self.visits.get() - f.visits,
            self.bytes_in.get() - f.bytes_in,
            self.bytes_out.get() - f.bytes_out,
            wakes - f.wakes,
        ));
        *f = Flushed {
            visits: self.visits.get(),
            classes,
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            wakes,
        };
        reports
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a private constructor of a plain record"
    )]
    fn report(
        &self,
        day: u32,
        hll: HyperLogLog,
        requests_by_class: [u64; 5],
        visits: u64,
        bytes_in: u64,
        bytes_out: u64,
        wakes: u64,
    ) -> SpaceReport {
        SpaceReport {
            space: self.space.clone(),
            day,
            visits,
            requests_by_class,
            bytes_in,
            bytes_out,
            wakes,
            unique_visitors: hll,
        }
    }
}

/// The registry and metric families of one proxy.
#[derive(Debug)]
pub struct Meter {
    registry: Registry,
    requests: IntCounterVec,
    visits: IntCounterVec,
    unique: IntGaugeVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    duration: HistogramVec,
    open_streams: IntGaugeVec,
    waiting: IntGaugeVec,
    wakes: IntCounterVec,
    wake_duration: HistogramVec,
    ejections: IntCounterVec,
    /// Requests that matched no Space.
    pub unrouted: IntCounter,
    /// Route table updates by result.
    pub route_updates: IntCounterVec,
    /// Routes left out of the current table (invalid, duplicate or with a
    /// host label another Space has).
    pub routes_rejected: IntGauge,
    /// Open client connections.
    pub connections: IntGauge,
    hasher: VisitorHasher,
    spaces: Mutex<HashMap<SpaceId, Arc<SpaceMeter>>>,
}

fn buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
}

impl Meter {
    /// Registers all families.
    pub fn new(hasher: VisitorHasher) -> Self {
        let registry = Registry::new();
        let space = &["space"];
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric");
                m
            }};
        }
        Self {
            requests: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_requests_total",
                    "Responses by Space and status class"
                ),
                &["space", "class"]
            )),
            visits: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_visits_total",
                    "Page views (GET of an HTML document)"
                ),
                space
            )),
            unique: reg!(IntGaugeVec::new(
                Opts::new(
                    "spaceport_proxy_unique_visitors",
                    "Estimated unique visitors today (UTC)"
                ),
                space
            )),
            bytes_in: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_received_bytes_total",
                    "Request body bytes from clients"
                ),
                space
            )),
            bytes_out: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_sent_bytes_total",
                    "Response body bytes to clients"
                ),
                space
            )),
            duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "spaceport_proxy_response_head_duration_seconds",
                    "Time from request to response head"
                )
                .buckets(buckets()),
                space
            )),
            open_streams: reg!(IntGaugeVec::new(
                Opts::new(
                    "spaceport_proxy_open_streams",
                    "Open WebSocket/upgraded and SSE streams"
                ),
                space
            )),
            waiting: reg!(IntGaugeVec::new(
                Opts::new(
                    "spaceport_proxy_wake_waiting_requests",
                    "Requests held while a Space wakes"
                ),
                space
            )),
            wakes: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_wakes_total",
                    "Wakes of sleeping Spaces by result"
                ),
                &["space", "result"]
            )),
            wake_duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "spaceport_proxy_wake_duration_seconds",
                    "Time from wake request to healthy upstream"
                )
                .buckets(vec![
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0
                ]),
                space
            )),
            ejections: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_upstream_ejections_total",
                    "Replicas ejected after failures"
                ),
                space
            )),
            unrouted: reg!(IntCounter::new(
                "spaceport_proxy_unrouted_requests_total",
                "Requests that matched no Space"
            )),
            route_updates: reg!(IntCounterVec::new(
                Opts::new(
                    "spaceport_proxy_route_updates_total",
                    "Route table updates by result"
                ),
                &["result"]
            )),
            routes_rejected: reg!(IntGauge::new(
                "spaceport_proxy_routes_rejected",
                "Routes left out of the current table because they are invalid or collide"
            )),
            connections: reg!(IntGauge::new(
                "spaceport_proxy_open_connections",
                "Open client connections"
            )),
            registry,
            hasher,
            spaces: Mutex::new(HashMap::new()),
        }
    }

    /// The handles of one Space (created on first use, then shared).
    pub fn space(&self, space: &SpaceId) -> Arc<SpaceMeter> {
        let mut spaces = self.spaces.lock().expect("meter lock");
        if let Some(m) = spaces.get(space) {
            return m.clone();
        }
        let s = space.to_string();
        let l = &[s.as_str()];
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|c| self.requests.with_label_values(&[s.as_str(), c]));
        let m = Arc::new(SpaceMeter {
            space: space.clone(),
            classes,
            visits: self.visits.with_label_values(l),
            unique: self.unique.with_label_values(l),
            bytes_in: self.bytes_in.with_label_values(l),
            bytes_out: self.bytes_out.with_label_values(l),
            duration: self.duration.with_label_values(l),
            open_streams: self.open_streams.with_label_values(l),
            waiting: self.waiting.with_label_values(l),
            wakes_ok: self.wakes.with_label_values(&[s.as_str(), "ok"]),
            wakes_failed: self.wakes.with_label_values(&[s.as_str(), "failed"]),
            wake_duration: self.wake_duration.with_label_values(l),
            ejections: self.ejections.with_label_values(l),
            sketch: Mutex::new(DaySketch {
                day: utc_day(SystemTime::now()),
                hll: HyperLogLog::default(),
                finished: Vec::new(),
            }),
            flushed: Mutex::new(Flushed::default()),
            hasher: self.hasher.clone(),
        });
        spaces.insert(space.clone(), m.clone());
        m
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let spaces: Vec<_> = self
            .spaces
            .lock()
            .expect("meter lock")
            .values()
            .cloned()
            .collect();
        for m in spaces {
            m.unique
                .set(i64::try_from(m.unique_today()).unwrap_or(i64::MAX));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("prometheus text is utf-8")
    }

    /// Reports of every Space since the previous call.
    pub fn reports(&self) -> Vec<SpaceReport> {
        let spaces: Vec<_> = self
            .spaces
            .lock()
            .expect("meter lock")
            .values()
            .cloned()
            .collect();
        spaces.iter().flat_map(|m| m.reports()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const BROWSER: &[(&str, &str)] = &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    const HTML: &[(&str, &str)] = &[("content-type", "text/html; charset=utf-8")];

    #[test]
    fn a_browser_page_load_is_a_visit() {
        assert!(is_visit(
            &Method::GET,
            "/",
            &hdrs(BROWSER),
            StatusCode::OK,
            &hdrs(HTML)
        ));
        let nav = hdrs(&[("sec-fetch-dest", "document"), ("accept", "*/*")]);
        assert!(is_visit(
            &Method::GET,
            "/?x=1",
            &nav,
            StatusCode::OK,
            &hdrs(HTML)
        ));
        let embed = hdrs(&[("sec-fetch-dest", "iframe")]);
        assert!(is_visit(
            &Method::GET,
            "/",
            &embed,
            StatusCode::OK,
            &hdrs(HTML)
        ));
    }

    #[test]
    fn assets_polls_errors_and_api_calls_are_not_visits() {
        let ok = StatusCode::OK;
        let g = Method::GET;
        assert!(!is_visit(
            &g,
            "/assets/index.js",
            &hdrs(BROWSER),
            ok,
            &hdrs(HTML)
        ));
        assert!(!is_visit(&g, "/logo.PNG", &hdrs(BROWSER), ok, &hdrs(HTML)));
        assert!(!is_visit(
            &g,
            "/queue/data",
            &hdrs(BROWSER),
            ok,
            &hdrs(HTML)
        ));
        assert!(!is_visit(
            &g,
            "/_stcore/health",
            &hdrs(BROWSER),
            ok,
            &hdrs(HTML)
        ));
        assert!(!is_visit(
            &Method::POST,
            "/",
            &hdrs(BROWSER),
            ok,
            &hdrs(HTML)
        ));
        assert!(!is_visit(
            &g,
            "/",
            &hdrs(BROWSER),
            StatusCode::NOT_FOUND,
            &hdrs(HTML)
        ));
        let json = hdrs(&[("content-type", "application/json")]);
        assert!(!is_visit(&g, "/", &hdrs(BROWSER), ok, &json));
        let fetch = hdrs(&[("sec-fetch-dest", "empty"), ("accept", "text/html")]);
        assert!(!is_visit(&g, "/", &fetch, ok, &hdrs(HTML)));
        let curl = hdrs(&[("accept", "*/*")]);
        assert!(!is_visit(&g, "/", &curl, ok, &hdrs(HTML)));
        let ws = hdrs(&[("accept", "text/html"), ("upgrade", "websocket")]);
        assert!(!is_visit(&g, "/", &ws, ok, &hdrs(HTML)));
    }

    fn within(est: u64, truth: u64, tolerance: f64) -> bool {
        (est as f64 - truth as f64).abs() <= truth as f64 * tolerance
    }

    #[test]
    fn unique_visitors_are_counted_within_five_percent() {
        let h = VisitorHasher::new(b"secret");
        for n in [10u32, 1_000, 100_000] {
            let mut hll = HyperLogLog::default();
            for i in 0..n {
                let ip = IpAddr::from(i.to_be_bytes());
                hll.add_hash(h.hash(20_000, ip, b"ua"));
                hll.add_hash(h.hash(20_000, ip, b"ua"));
            }
            assert!(
                within(hll.estimate(), u64::from(n), 0.05),
                "n={n} est={}",
                hll.estimate()
            );
        }
    }

    #[test]
    fn merged_sketches_count_the_union_once() {
        let h = VisitorHasher::new(b"shared");
        let (mut a, mut b) = (HyperLogLog::default(), HyperLogLog::default());
        for i in 0..30_000u32 {
            a.add_hash(h.hash(1, IpAddr::from(i.to_be_bytes()), b""));
        }
        for i in 20_000..50_000u32 {
            b.add_hash(h.hash(1, IpAddr::from(i.to_be_bytes()), b""));
        }
        let restored = HyperLogLog::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(restored, b);
        a.merge(&restored);
        assert!(within(a.estimate(), 50_000, 0.05), "est={}", a.estimate());
        let before = a.clone();
        a.merge(&before);
        assert_eq!(a, before, "merge is idempotent");
    }

    #[test]
    fn the_same_visitor_hashes_differently_on_another_day_or_secret() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let h = VisitorHasher::new(b"s1");
        assert_eq!(h.hash(1, ip, b"ua"), h.hash(1, ip, b"ua"));
        assert_ne!(h.hash(1, ip, b"ua"), h.hash(2, ip, b"ua"));
        assert_ne!(
            h.hash(1, ip, b"ua"),
            VisitorHasher::new(b"s2").hash(1, ip, b"ua")
        );
    }

    #[test]
    fn reports_are_deltas_and_metrics_are_named_with_units() {
        let meter = Meter::new(VisitorHasher::new(b"x"));
        let space: SpaceId = "a/b".parse().unwrap();
        let m = meter.space(&space);
        m.visit("192.0.2.1".parse().unwrap(), b"ua");
        m.visit("192.0.2.1".parse().unwrap(), b"ua");
        m.response(StatusCode::OK, Duration::from_millis(3));
        m.bytes_out(10);
        let first = meter.reports();
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].visits, first[0].bytes_out), (2, 10));
        assert_eq!(first[0].requests_by_class, [0, 1, 0, 0, 0]);
        assert_eq!(first[0].unique_visitors.estimate(), 1);
        let second = meter.reports();
        assert_eq!((second[0].visits, second[0].bytes_out), (0, 0));
        let text = meter.render();
        assert!(
            text.contains("spaceport_proxy_visits_total{space=\"a/b\"} 2"),
            "{text}"
        );
        assert!(text.contains("spaceport_proxy_unique_visitors{space=\"a/b\"} 1"));
        assert!(text.contains("spaceport_proxy_response_head_duration_seconds_bucket"));
    }
}
