//! The hub in the cluster, end to end against a mocked API server: the
//! real hub server on loopback, wired to the Kubernetes backend, driven by
//! its HTTP API and the real `git` client. The mock (tower-test) answers
//! the backend's calls from a list expected in order; the watch of the
//! Space resources is answered on the side, with the events a test sends.
//! A call that never comes fails the wait for it; a call not on the list
//! fails the scenario. The tests run on several threads: `git` blocks
//! the one that runs it.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{assert_granted, git};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use spaceport_controller::crd::COMMIT_ANNOTATION;
use spaceport_controller::hub::names::HUB_SPACE_ANNOTATION;
use spaceport_controller::hub::serve::{ClusterHub, HubArgs};
use tokio::sync::{Notify, mpsc};
use tower_test::mock::Handle;

const TOKEN: &str = "hf_cluster_admin_token_0123456789";
const NS: &str = "team";
const SPACES: &str = "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces";
const SECRETS: &str = "/api/v1/namespaces/team/secrets";

type Check = Box<dyn Fn(&Value) + Send>;
type Reply = Box<dyn Fn(&Value) -> (u16, Value) + Send>;

/// One expected call: method, path (up to the query), a check of its body,
/// and the answer.
struct Call {
    method: &'static str,
    path: String,
    check: Check,
    reply: Reply,
}

fn call(method: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        path: path.into(),
        check: Box::new(|_| {}),
        reply: Box::new(|body| (200, body.clone())),
    }
}

impl Call {
    fn check(mut self, f: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Box::new(f);
        self
    }
    fn reply(mut self, f: impl Fn(&Value) -> (u16, Value) + Send + 'static) -> Self {
        self.reply = Box::new(f);
        self
    }
}

fn not_found(_: &Value) -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// The mocked API server: the expected calls in order, the watch aside.
#[derive(Clone)]
struct ApiServer {
    expected: Arc<Mutex<VecDeque<Call>>>,
    /// Calls that matched nothing, or came in another order.
    wrong: Arc<Mutex<Vec<String>>>,
    /// Signalled after every answered call.
    answered: Arc<Notify>,
    events: mpsc::UnboundedSender<Value>,
}

impl ApiServer {
    fn start(mut handle: Handle<Request<Body>, Response<Body>>) -> Self {
        let (events, rx) = mpsc::unbounded_channel::<Value>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let server = ApiServer {
            expected: Arc::default(),
            wrong: Arc::default(),
            answered: Arc::default(),
            events,
        };
        let this = server.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().as_str().to_owned();
                let uri = request.uri().clone();
                assert_granted(&spaceport_controller::rbac::HUB, &method, &uri.to_string());
                let path = uri.path().to_owned();
                let query = uri.query().unwrap_or_default().to_owned();
                if method == "GET" && path == SPACES {
                    // The backend's watcher: only the hub's own resources.
                    if !query.contains("managed-by") {
                        this.wrong
                            .lock()
                            .unwrap()
                            .push(format!("unfiltered list {uri}"));
                    }
                    if query.contains("watch=true") {
                        let rx = rx.clone();
                        tokio::spawn(async move {
                            let Some(object) = rx.lock().await.recv().await else {
                                return;
                            };
                            let mut line =
                                serde_json::to_vec(&json!({"type": "MODIFIED", "object": object}))
                                    .unwrap();
                            line.push(b'\n');
                            send.send_response(Response::new(Body::from(line)));
                        });
                    } else {
                        let list = json!({"apiVersion": "spaceport.dev/v1alpha1",
                            "kind": "SpaceList", "metadata": {"resourceVersion": "1"}, "items": []});
                        send.send_response(Response::new(Body::from(
                            serde_json::to_vec(&list).unwrap(),
                        )));
                    }
                    continue;
                }
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let next = this.expected.lock().unwrap().pop_front();
                let Some(expected) = next else {
                    this.wrong
                        .lock()
                        .unwrap()
                        .push(format!("unexpected {method} {uri}"));
                    continue;
                };
                if expected.method != method || expected.path != path {
                    this.wrong.lock().unwrap().push(format!(
                        "expected {} {}, got {method} {uri}",
                        expected.method, expected.path
                    ));
                    continue;
                }
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (expected.check)(&body)
                }));
                if let Err(e) = checked {
                    let why = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    this.wrong
                        .lock()
                        .unwrap()
                        .push(format!("{method} {uri}: {why}"));
                }
                let (status, reply) = (expected.reply)(&body);
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
                this.answered.notify_waiters();
            }
        });
        server
    }

    /// Expects these calls, in this order, next.
    fn expect(&self, calls: Vec<Call>) {
        self.expected.lock().unwrap().extend(calls);
    }

    /// Waits until every expected call came; fails on a wrong one.
    async fn all_answered(&self, what: &str) {
        let wait = async {
            loop {
                let notified = self.answered.notified();
                self.assert_no_wrong_call();
                if self.expected.lock().unwrap().is_empty() {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_err()
        {
            let left: Vec<String> = self
                .expected
                .lock()
                .unwrap()
                .iter()
                .map(|c| format!("{} {}", c.method, c.path))
                .collect();
            panic!("{what}: expected calls never came: {left:?}");
        }
    }

    fn assert_no_wrong_call(&self) {
        let wrong = self.wrong.lock().unwrap().clone();
        assert!(wrong.is_empty(), "wrong API calls: {wrong:#?}");
    }

    /// Delivers a watch event (a Space resource as it is now).
    fn event(&self, space: Value) {
        self.events.send(space).unwrap();
    }
}

/// The cluster hub on loopback, over a mocked API server.
struct Fixture {
    api: ApiServer,
    base: String,
    http: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    dir: tempfile::TempDir,
    _hub: ClusterHub,
}

async fn start() -> Fixture {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api = ApiServer::start(handle);
    let client = Client::new(service, NS);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let args = HubArgs {
        listen: addr,
        data: dir.path().join("data"),
        domain: "spaces.example".into(),
        namespace: Some(NS.into()),
        public_url: Some(base.clone()),
        admin_token_file: Some(token_file),
        trust_forwarded: false,
    };
    let hub = ClusterHub::open(&args, client).expect("the hub opens");
    let router = hub.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Fixture {
        api,
        base,
        http: HttpClient::builder(TokioExecutor::new()).build_http(),
        dir,
        _hub: hub,
    }
}

impl Fixture {
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }

    /// Polls the runtime until its stage is `stage`.
    async fn runtime_reaches(&self, space: &str, stage: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, rt) = self
                .request("GET", &format!("/api/spaces/{space}/runtime"), None)
                .await;
            assert_eq!(status, 200, "{rt}");
            if rt["stage"] == stage {
                return rt;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the runtime never said {stage}: {rt}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn work(&self) -> std::path::PathBuf {
        self.dir.path().join("work")
    }

    /// Commits `files` and pushes main with the real git client; the commit id.
    fn push(&self, space: &str, files: &[(&str, &str)], message: &str) -> String {
        let work = self.work();
        if !work.exists() {
            std::fs::create_dir_all(&work).unwrap();
            git(&work, &["init", "-q", "-b", "main"]);
        }
        for (name, text) in files {
            std::fs::write(work.join(name), text).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", message]);
        let url = format!(
            "http://admin:{TOKEN}@{}/spaces/{space}",
            self.base.trim_start_matches("http://")
        );
        git(&work, &["push", "-q", &url, "main"]);
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

const README: &str = "---\ntitle: Demo\nsdk: gradio\napp_file: app.py\n---\n# Demo\n";

/// The applied Space echoed back as the API server would: with a uid and
/// a resource version.
fn stored(body: &Value) -> (u16, Value) {
    let mut b = body.clone();
    b["metadata"]["uid"] = json!("uid-demo");
    b["metadata"]["resourceVersion"] = json!("5");
    (200, b)
}

fn space_applied(commit: String, paused: bool) -> impl Fn(&Value) + Send {
    move |b| {
        assert_eq!(b["apiVersion"], "spaceport.dev/v1alpha1", "{b}");
        assert_eq!(b["kind"], "Space", "{b}");
        assert_eq!(b["metadata"]["name"], "admin-demo", "{b}");
        let ann = &b["metadata"]["annotations"];
        assert_eq!(ann[COMMIT_ANNOTATION], commit.as_str(), "{b}");
        assert_eq!(ann[HUB_SPACE_ANNOTATION], "admin/demo", "{b}");
        assert_eq!(
            b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "spaceport-hub"
        );
        let spec = &b["spec"];
        assert_eq!(spec["source"], json!({"hub": "admin/demo"}), "{b}");
        assert_eq!(spec["hardware"], "cpu-upgrade", "{b}");
        assert_eq!(spec["sleepTimeSeconds"], 600, "{b}");
        assert_eq!(spec["visibility"], "public", "{b}");
        assert_eq!(spec["paused"], paused, "{b}");
        assert_eq!(spec["variables"], json!({"MODEL": "tiny"}), "{b}");
        assert_eq!(spec["secretRefs"], json!(["admin-demo-secrets"]), "{b}");
        assert!(
            !b.to_string().contains("s3cr3t-value"),
            "a secret value in the Space: {b}"
        );
    }
}

fn secret_applied(owned: bool) -> impl Fn(&Value) + Send {
    move |b| {
        assert_eq!(b["kind"], "Secret", "{b}");
        assert_eq!(b["metadata"]["name"], "admin-demo-secrets", "{b}");
        // base64 of the value.
        assert_eq!(b["data"]["HF_TOKEN"], "czNjcjN0LXZhbHVl", "{b}");
        let owners = &b["metadata"]["ownerReferences"];
        if owned {
            assert_eq!(owners[0]["kind"], "Space", "{b}");
            assert_eq!(owners[0]["name"], "admin-demo", "{b}");
            assert_eq!(owners[0]["uid"], "uid-demo", "{b}");
        } else {
            assert!(owners.is_null(), "{b}");
        }
    }
}

fn apply_path(base: &str, name: &str) -> String {
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_apply_the_space_and_its_status_drives_the_runtime() {
    let f = start().await;
    let (status, created) = f
        .request(
            "POST",
            "/api/repos/create",
            Some(json!({
                "type": "space", "name": "demo", "sdk": "gradio",
                "hardware": "cpu-upgrade", "sleepTimeSeconds": 600,
                "secrets": [{"key": "HF_TOKEN", "value": "s3cr3t-value"}],
                "variables": [{"key": "MODEL", "value": "tiny"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    // Nothing pushed yet: the hub writes nothing to the cluster.
    let rt = f.runtime_reaches("admin/demo", "NO_APP_FILE").await;
    assert_eq!(rt["hardware"]["requested"], "cpu-upgrade");
    f.api.assert_no_wrong_call();

    let space = apply_path(SPACES, "admin-demo");
    let secret = apply_path(SECRETS, "admin-demo-secrets");
    // The first push: no resource yet, so the Secret comes first without an
    // owner, then the Space, then the Secret owned by the Space.
    let first = {
        let work = f.work();
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        // Known before the push, so that the expected calls can name it.
        std::fs::write(work.join("README.md"), README).unwrap();
        std::fs::write(work.join("app.py"), "print('v1')\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "v1"]);
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    };
    f.api.expect(vec![
        call("GET", space.clone()).reply(not_found),
        call("PATCH", secret.clone()).check(secret_applied(false)),
        call("PATCH", space.clone())
            .check(space_applied(first.clone(), false))
            .reply(stored),
        call("PATCH", secret.clone()).check(secret_applied(true)),
    ]);
    let url = format!(
        "http://admin:{TOKEN}@{}/spaces/admin/demo",
        f.base.trim_start_matches("http://")
    );
    git(&f.work(), &["push", "-q", &url, "main"]);
    f.api.all_answered("the first push").await;
    let rt = f.runtime_reaches("admin/demo", "BUILDING").await;
    assert_eq!(rt["sha"], first.as_str(), "{rt}");

    // The second push updates the resource with the new commit.
    let (_, applied) = stored(&{
        let mut b = json!({});
        b["apiVersion"] = json!("spaceport.dev/v1alpha1");
        b["kind"] = json!("Space");
        b["metadata"] = json!({"name": "admin-demo", "namespace": NS,
            "annotations": {COMMIT_ANNOTATION: first, HUB_SPACE_ANNOTATION: "admin/demo"}});
        b["spec"] = json!({"source": {"hub": "admin/demo"}, "secretRefs": ["admin-demo-secrets"]});
        b
    });
    let second_expected = Arc::new(Mutex::new(String::new()));
    let s2 = second_expected.clone();
    let existing = applied.clone();
    f.api.expect(vec![
        call("GET", space.clone()).reply(move |_| (200, existing.clone())),
        call("PATCH", secret.clone()).check(secret_applied(true)),
        call("PATCH", space.clone())
            .check(move |b| space_applied(s2.lock().unwrap().clone(), false)(b))
            .reply(stored),
    ]);
    // The commit id is known only once made: make it, then push.
    let work = f.work();
    std::fs::write(work.join("app.py"), "print('v2')\n").unwrap();
    git(&work, &["commit", "-q", "-am", "v2"]);
    let second = git(&work, &["rev-parse", "HEAD"]).trim().to_owned();
    assert_ne!(first, second);
    *second_expected.lock().unwrap() = second.clone();
    git(&work, &["push", "-q", &url, "main"]);
    f.api.all_answered("the second push").await;

    // The controller reports: the watch carries the status to the API.
    let mut running = applied.clone();
    running["metadata"]["annotations"][COMMIT_ANNOTATION] = json!(second);
    running["metadata"]["resourceVersion"] = json!("6");
    running["status"] = json!({"stage": "RUNNING", "observedCommit": second,
        "url": "http://team-admin-demo.spaces.example"});
    f.api.event(running.clone());
    let rt = f.runtime_reaches("admin/demo", "RUNNING").await;
    assert_eq!(rt["sha"], second.as_str(), "{rt}");
    assert!(rt.get("errorMessage").is_none(), "{rt}");
    assert_eq!(rt["hardware"]["current"], "cpu-upgrade", "{rt}");

    let mut failed = running;
    failed["metadata"]["resourceVersion"] = json!("7");
    failed["status"] = json!({"stage": "BUILD_ERROR", "observedCommit": second,
        "message": "step 3/7: pip install failed"});
    f.api.event(failed);
    let rt = f.runtime_reaches("admin/demo", "BUILD_ERROR").await;
    assert_eq!(rt["errorMessage"], "step 3/7: pip install failed", "{rt}");

    // Logs are not the hub's to give here, and it says so.
    let (status, body) = f
        .request("GET", "/api/spaces/admin/demo/logs/build", None)
        .await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body.to_string().contains("/logs/team/admin-demo/build"),
        "{body}"
    );

    // Pausing applies paused: true with everything else kept.
    let existing = applied.clone();
    f.api.expect(vec![
        call("GET", space.clone()).reply(move |_| (200, existing.clone())),
        call("PATCH", secret.clone()).check(secret_applied(true)),
        call("PATCH", space.clone())
            .check(space_applied(second.clone(), true))
            .reply(stored),
    ]);
    let (status, rt) = f
        .request("POST", "/api/spaces/admin/demo/pause", None)
        .await;
    assert_eq!(status, 200, "{rt}");
    assert_eq!(rt["stage"], "PAUSED", "{rt}");
    f.api.all_answered("the pause").await;

    // Deleting the Space deletes its resource and its Secret.
    let existing = applied.clone();
    f.api.expect(vec![
        call("GET", space.clone()).reply(move |_| (200, existing.clone())),
        call("DELETE", space.clone()).reply(|_| {
            (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            )
        }),
        call("DELETE", secret.clone()).reply(not_found),
    ]);
    let (status, body) = f
        .request(
            "DELETE",
            "/api/repos/delete",
            Some(json!({"type": "space", "name": "admin/demo"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    f.api.all_answered("the delete").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.api.assert_no_wrong_call();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_name_taken_by_another_resource_is_refused_and_said() {
    let f = start().await;
    let (status, body) = f
        .request(
            "POST",
            "/api/repos/create",
            Some(json!({"type": "space", "name": "demo", "sdk": "gradio"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A resource of that name that someone else made: read, never written.
    f.api
        .expect(vec![call("GET", apply_path(SPACES, "admin-demo")).reply(
            |_| {
                (
                    200,
                    json!({"apiVersion": "spaceport.dev/v1alpha1", "kind": "Space",
                "metadata": {"name": "admin-demo", "namespace": NS, "uid": "other"},
                "spec": {"source": {"git": {"url": "https://example.org/x.git"}}}}),
                )
            },
        )]);
    f.push(
        "admin/demo",
        &[("README.md", README), ("app.py", "print(1)\n")],
        "v1",
    );
    f.api.all_answered("the push").await;
    let rt = f.runtime_reaches("admin/demo", "CONFIG_ERROR").await;
    let msg = rt["errorMessage"].as_str().unwrap_or_default();
    assert!(
        msg.contains("team/admin-demo") && msg.contains("did not make"),
        "{rt}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.api.assert_no_wrong_call();
}
