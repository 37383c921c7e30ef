//! The controller's moving parts around the reconcile: the leader election
//! against a mocked API server, and the HTTP surface (health, readiness,
//! metrics, build logs).

mod support;

use support::assert_granted;

use axum::body::Body as AxumBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector;
use serde_json::{Value, json};
use spaceport_controller::build::{
    BoxFuture, BuildError, BuildJob, Built, GitLocation, ImageBuilder,
};
use spaceport_controller::builds::Builds;
use spaceport_controller::crd::Space;
use spaceport_controller::desired::ControllerSettings;
use spaceport_controller::http::{HttpState, router};
use spaceport_controller::leader::{Elector, LeaseSettings};
use spaceport_controller::reconcile::Context;
use spaceport_runtime::build::LogBook;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_test::mock::Handle;

type Mock = Handle<Request<Body>, Response<Body>>;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/spaceport/leases/spaceport-controller";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/spaceport/leases?";

fn elector() -> (Elector, Mock) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (elector, _) = Elector::new(
        client,
        LeaseSettings {
            namespace: "spaceport".into(),
            name: "spaceport-controller".into(),
            identity: "controller-b".into(),
            duration: Duration::from_secs(15),
        },
    );
    (elector, handle)
}

/// Answers the next call, checking its method and path; returns its body.
async fn answer(handle: &mut Mock, method: &str, path: &str, status: u16, reply: Value) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the call came")
        .expect("a call");
    assert_granted(
        &spaceport_controller::rbac::CONTROLLER,
        request.method().as_str(),
        &request.uri().to_string(),
    );
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert!(
        request.uri().to_string().starts_with(path),
        "expected {method} {path}, got {}",
        request.uri()
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "spaceport-controller", "namespace": "spaceport", "resourceVersion": "41"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": renewed, "leaseTransitions": 1}
    })
}

#[tokio::test]
async fn a_missing_lease_is_created_and_held() {
    let (elector, mut api) = elector();
    let round = tokio::spawn(async move { elector.round().await });
    answer(&mut api, "GET", LEASE, 404, not_found()).await;
    let created = answer(
        &mut api,
        "POST",
        LEASES,
        201,
        lease("controller-b", "2026-01-01T00:00:00.000000Z"),
    )
    .await;
    assert_eq!(created["spec"]["holderIdentity"], "controller-b");
    assert!(round.await.unwrap().unwrap(), "holds the lease");
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_left_alone() {
    let (elector, mut api) = elector();
    let round = tokio::spawn(async move { elector.round().await });
    let fresh = k8s_openapi::jiff::Timestamp::now().to_string();
    answer(&mut api, "GET", LEASE, 200, lease("controller-a", &fresh)).await;
    assert!(!round.await.unwrap().unwrap(), "follows");
    let next = tokio::time::timeout(Duration::from_millis(200), api.next_request()).await;
    assert!(matches!(next, Err(_) | Ok(None)), "no write");
}

#[tokio::test]
async fn an_expired_lease_is_taken_with_its_resource_version_and_a_lost_race_follows() {
    let (elector, mut api) = elector();
    let elector = Arc::new(elector);
    let e = elector.clone();
    let round = tokio::spawn(async move { e.round().await });
    answer(
        &mut api,
        "GET",
        LEASE,
        200,
        lease("controller-a", "2020-01-01T00:00:00.000000Z"),
    )
    .await;
    let put = answer(
        &mut api,
        "PUT",
        LEASE,
        200,
        lease("controller-b", "2026-01-01T00:00:00.000000Z"),
    )
    .await;
    assert_eq!(
        put["metadata"]["resourceVersion"], "41",
        "a conditional write"
    );
    assert_eq!(put["spec"]["holderIdentity"], "controller-b");
    assert_eq!(put["spec"]["leaseTransitions"], 2);
    assert!(round.await.unwrap().unwrap());

    let e = elector.clone();
    let round = tokio::spawn(async move { e.round().await });
    answer(
        &mut api,
        "GET",
        LEASE,
        200,
        lease("controller-a", "2020-01-01T00:00:00.000000Z"),
    )
    .await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"});
    answer(&mut api, "PUT", LEASE, 409, conflict).await;
    assert!(
        !round.await.unwrap().unwrap(),
        "another replica won the race"
    );
}

struct Instant(&'static str);

impl ImageBuilder for Instant {
    fn build(
        &self,
        job: BuildJob,
        log: Arc<LogBook>,
    ) -> BoxFuture<'static, Result<Built, BuildError>> {
        let line = self.0;
        Box::pin(async move {
            log.push(line);
            Err(BuildError::Failed(format!("{} failed", job.commit)))
        })
    }
}

async fn get(app: &axum::Router, path: &str, accept: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                .header("accept", accept)
                .body(AxumBody::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_readiness_metrics_and_build_logs_are_served() {
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut ctx = Context::new(client.clone(), ControllerSettings::default());
    ctx.builds = Builds::new(Some(Arc::new(Instant("Step 1/2 : FROM scratch"))));
    let ctx = Arc::new(ctx);
    let (reader, mut writer) = reflector::store::<Space>();
    let space: Space = serde_norway::from_str(
        "apiVersion: spaceport.dev/v1alpha1\nkind: Space\nmetadata: {name: demo, namespace: team}\nspec: {source: {hub: team/demo}}\nstatus: {stage: BUILDING}\n",
    )
    .unwrap();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(space));
    let (ready, ready_rx) = watch::channel(false);
    let app = router(HttpState {
        ctx: ctx.clone(),
        spaces: reader,
        ready: ready_rx,
    });

    assert_eq!(get(&app, "/healthz", "*/*").await.0, StatusCode::OK);
    assert_eq!(
        get(&app, "/readyz", "*/*").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.send_replace(true);
    assert_eq!(get(&app, "/readyz", "*/*").await.0, StatusCode::OK);

    let (status, text) = get(&app, "/metrics", "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("spaceport_controller_spaces{stage=\"BUILDING\"} 1"),
        "{text}"
    );

    let (status, text) = get(&app, "/logs/team/demo/build", "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("team/demo"), "{text}");

    let job = BuildJob {
        namespace: "team".into(),
        name: "demo".into(),
        commit: "c0ffee".into(),
        source: GitLocation {
            url: "http://hub/spaces/team/demo".into(),
            credentials: None,
        },
        config: None,
        secrets: Default::default(),
        variables: Default::default(),
        no_cache: false,
    };
    drop(ctx.builds.start(client, job));
    // The outcome goes to the status.
    let patch = answer(
        &mut api,
        "PATCH",
        "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/demo/status?",
        200,
        json!({"apiVersion": "spaceport.dev/v1alpha1", "kind": "Space", "metadata": {"name": "demo", "namespace": "team"}, "spec": {"source": {"hub": "team/demo"}}}),
    )
    .await;
    assert_eq!(patch["status"]["build"]["result"], "Failed");

    let (status, text) = get(&app, "/logs/team/demo/build", "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("Step 1/2 : FROM scratch"), "{text}");
    assert!(text.contains("c0ffee failed"), "{text}");

    // Followed: the past lines come at once, then the stream stays open.
    let response = app
        .clone()
        .oneshot(
            Request::get("/logs/team/demo/build")
                .header("accept", "text/event-stream")
                .body(AxumBody::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    while !text.contains("failed") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the past lines come at once")
            .expect("a frame")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.contains("data: Step 1/2 : FROM scratch"), "{text}");
}
