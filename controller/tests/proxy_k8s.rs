//! The proxy on Kubernetes against a mocked API server (tower-test): routes
//! from watched Spaces and EndpointSlices, the wake annotation, activity in
//! the status, and one end-to-end run with the real proxy server and a real
//! upstream on loopback. Each scenario lists the calls it expects (in any
//! order, since the watchers run side by side) and fails when one never
//! comes, when a call matches none, or when a call's body is wrong.

mod support;

use support::assert_granted;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde_json::{Value, json};
use spaceport_controller::lifecycle::WAKE_ANNOTATION;
use spaceport_controller::proxy::Clock;
use tokio::sync::mpsc;

type MockBody = UnsyncBoxBody<Bytes, Infallible>;
type Check = Box<dyn Fn(&str, &Value) + Send>;

enum Reply {
    /// Answer with this status and JSON.
    Json(u16, Value),
    /// A watch: one JSON event per line, as the test sends them.
    Watch(mpsc::UnboundedReceiver<Value>),
}

/// One expected API call.
struct Expect {
    method: &'static str,
    path: String,
    watch: bool,
    query: Vec<&'static str>,
    check: Check,
    reply: Reply,
}

fn expect(method: &'static str, path: impl Into<String>, reply: Reply) -> Expect {
    Expect {
        method,
        path: path.into(),
        watch: matches!(reply, Reply::Watch(_)),
        query: Vec::new(),
        check: Box::new(|_, _| {}),
        reply,
    }
}

impl Expect {
    fn query(mut self, part: &'static str) -> Self {
        self.query.push(part);
        self
    }
    fn check(mut self, f: impl Fn(&str, &Value) + Send + 'static) -> Self {
        self.check = Box::new(f);
        self
    }
}

/// A list answer, and a watch whose events the returned sender feeds.
fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": api_version, "kind": format!("{kind}List"),
               "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

fn watch() -> (mpsc::UnboundedSender<Value>, Reply) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Reply::Watch(rx))
}

/// The mocked API server: answers expected calls, records the rest.
struct MockApi {
    pending: Arc<Mutex<Vec<Option<Expect>>>>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl MockApi {
    fn start(expected: Vec<Expect>) -> (Client, MockApi) {
        let (service, mut handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<MockBody>>();
        let pending = Arc::new(Mutex::new(
            expected.into_iter().map(Some).collect::<Vec<_>>(),
        ));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (p, errs) = (pending.clone(), problems.clone());
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let uri = parts.uri.to_string();
                assert_granted(
                    &spaceport_controller::rbac::PROXY,
                    parts.method.as_str(),
                    &uri,
                );
                let query = parts.uri.query().unwrap_or("").to_owned();
                let is_watch = query.split('&').any(|q| q == "watch=true");
                let taken = {
                    let mut pending = p.lock().unwrap();
                    pending
                        .iter_mut()
                        .find(|e| {
                            e.as_ref().is_some_and(|e| {
                                e.method == parts.method.as_str()
                                    && e.path == parts.uri.path()
                                    && e.watch == is_watch
                                    && e.query.iter().all(|q| query.split('&').any(|x| x == *q))
                            })
                        })
                        .and_then(Option::take)
                };
                let Some(expected) = taken else {
                    errs.lock()
                        .unwrap()
                        .push(format!("unexpected {} {uri}", parts.method));
                    continue;
                };
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let ctype = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let checked =
                    std::panic::catch_unwind(AssertUnwindSafe(|| (expected.check)(&ctype, &body)));
                if checked.is_err() {
                    errs.lock()
                        .unwrap()
                        .push(format!("wrong call {} {uri}: {body}", parts.method));
                }
                let response = match expected.reply {
                    Reply::Json(status, v) => Response::builder()
                        .status(status)
                        .body(full(serde_json::to_vec(&v).unwrap()))
                        .unwrap(),
                    Reply::Watch(rx) => {
                        let lines = futures_util::stream::unfold(rx, |mut rx| async move {
                            let event = rx.recv().await?;
                            let mut line = serde_json::to_vec(&event).unwrap();
                            line.push(b'\n');
                            Some((Ok(http_body::Frame::data(Bytes::from(line))), rx))
                        });
                        Response::new(StreamBody::new(lines).boxed_unsync())
                    }
                };
                send.send_response(response);
            }
        });
        (
            Client::new(service, "default"),
            MockApi { pending, problems },
        )
    }

    /// Waits until every expected call came, then a little longer for
    /// unexpected ones; panics with what went wrong.
    async fn verify(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = self
                .pending
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.is_some())
                .count();
            if left == 0 || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let missing: Vec<String> = self
            .pending
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|e| format!("missing {} {}", e.method, e.path))
            .collect();
        let problems = self.problems.lock().unwrap().clone();
        assert!(
            missing.is_empty() && problems.is_empty(),
            "{missing:?} {problems:?}"
        );
    }
}

fn full(bytes: Vec<u8>) -> MockBody {
    http_body_util::Full::new(Bytes::from(bytes)).boxed_unsync()
}

// ---- fixtures --------------------------------------------------------------

const SPACES: &str = "/apis/spaceport.dev/v1alpha1/spaces";
const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const NOW: &str = "2026-06-01T12:00:00Z";

fn space(ns: &str, name: &str, stage: &str) -> Value {
    json!({
        "apiVersion": "spaceport.dev/v1alpha1", "kind": "Space",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"source": {"image": "registry.local/app:1"}},
        "status": {"stage": stage, "message": "as the test says",
                   "lastActivity": "2026-06-01T11:00:00Z"},
    })
}

fn slice(ns: &str, service: &str, ips: &[&str], port: u16) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x1"), "namespace": ns, "resourceVersion": "1",
                     "labels": {"kubernetes.io/service-name": service, "spaceport.dev/space": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn event(kind: &str, mut object: Value, version: &str) -> Value {
    object["metadata"]["resourceVersion"] = json!(version);
    json!({"type": kind, "object": object})
}

/// A clock the test moves by hand.
fn clock() -> (Clock, Arc<AtomicI64>) {
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let clock: Clock = Arc::new(move || {
        let base: Timestamp = NOW.parse().unwrap();
        Timestamp::from_second(base.as_second() + o.load(Ordering::SeqCst)).unwrap()
    });
    (clock, offset)
}

fn merge_patch(ctype: &str) {
    assert_eq!(ctype, "application/merge-patch+json");
}

#[path = "proxy_k8s/scenarios.rs"]
mod scenarios;

#[path = "proxy_k8s/end_to_end.rs"]
mod end_to_end;
