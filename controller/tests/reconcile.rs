//! Reconcile scenarios against a mocked API server (tower-test): each
//! scenario lists the calls it expects, in order, with what to answer. A
//! missing call fails the verifier; an unexpected one is never answered, so
//! the reconcile hangs and the scenario times out, and one made after the
//! expected calls (by a task the reconcile left running) fails the verifier.

mod support;

use support::assert_granted;

use http::{Request, Response};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use spaceport_controller::build::{BoxFuture, BuildError, BuildJob, Built, ImageBuilder};
use spaceport_controller::builds::Builds;
use spaceport_controller::crd::{BuildResult, BuildStatus, COMMIT_ANNOTATION, Space, SpaceStatus};
use spaceport_controller::desired::ControllerSettings;
use spaceport_controller::lifecycle::WAKE_ANNOTATION;
use spaceport_controller::reconcile::{Context, FINALIZER, reconcile};
use spaceport_runtime::build::LogBook;
use spaceport_runtime::stage::Stage;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::Handle;

const NOW: &str = "2026-06-01T12:00:00Z";

/// One expected call: method, path prefix, and a check of the body.
struct Call {
    method: &'static str,
    path: String,
    check: Box<dyn Fn(&Value) + Send>,
    reply: Box<dyn Fn(&Value) -> Value + Send>,
}

fn call(method: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        path: path.into(),
        check: Box::new(|_| {}),
        reply: Box::new(|body| body.clone()),
    }
}

impl Call {
    fn check(mut self, f: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Box::new(f);
        self
    }
    fn reply(mut self, f: impl Fn(&Value) -> Value + Send + 'static) -> Self {
        self.reply = Box::new(f);
        self
    }
}

fn base() -> Space {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gradio-hello/space.yaml");
    let mut s: Space = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s.meta_mut().namespace = Some("team".into());
    s.meta_mut().uid = Some("uid-1".into());
    s.meta_mut().generation = Some(3);
    s
}

fn with_finalizer(mut s: Space) -> Space {
    s.meta_mut().finalizers = Some(vec![FINALIZER.into()]);
    s
}

fn built(mut s: Space, stage: Stage, last_activity: &str) -> Space {
    s.status = Some(SpaceStatus {
        stage: Some(stage),
        image: Some("registry.local/team/gradio-hello:abc".into()),
        last_activity: Some(last_activity.into()),
        ..SpaceStatus::default()
    });
    s
}

async fn run(space: Space, calls: Vec<Call>) -> Action {
    run_with(space, calls, |_| {}).await
}

async fn run_with(space: Space, calls: Vec<Call>, setup: impl FnOnce(&mut Context)) -> Action {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut ctx = Context::new(client, ControllerSettings::default());
    setup(&mut ctx);
    ctx.clock = Box::new(|| NOW.parse::<Timestamp>().unwrap());
    let verifier = tokio::spawn(verify(handle, calls, space_json(&space)));
    let action = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(space), Arc::new(ctx)),
    )
    .await
    .expect("reconcile finished (an unexpected API call would hang it)")
    .expect("reconcile succeeded");
    tokio::time::timeout(Duration::from_secs(10), verifier)
        .await
        .expect("every expected call came")
        .expect("verifier ran");
    action
}

/// Reconciles each Space in turn with one context (its builds carry over),
/// waiting between them for the builds the previous one started.
async fn run_seq(spaces: Vec<Space>, calls: Vec<Call>, setup: impl FnOnce(&mut Context)) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut ctx = Context::new(client, ControllerSettings::default());
    setup(&mut ctx);
    ctx.clock = Box::new(|| NOW.parse::<Timestamp>().unwrap());
    let ctx = Arc::new(ctx);
    let verifier = tokio::spawn(verify(handle, calls, space_json(&spaces[0])));
    for space in spaces {
        let key = format!("{}/{}", space.namespace().unwrap(), space.name_any());
        tokio::time::timeout(
            Duration::from_secs(10),
            reconcile(Arc::new(space), ctx.clone()),
        )
        .await
        .expect("reconcile finished")
        .expect("reconcile succeeded");
        let settled = async {
            while ctx.builds.in_flight(&key).is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .expect("the build ended");
    }
    drop(ctx);
    tokio::time::timeout(Duration::from_secs(10), verifier)
        .await
        .expect("every expected call came")
        .expect("verifier ran");
}

async fn verify(mut handle: Handle<Request<Body>, Response<Body>>, calls: Vec<Call>, space: Value) {
    for expected in calls {
        let (request, send) = handle.next_request().await.expect("an API call");
        let uri = request.uri().to_string();
        assert_granted(
            &spaceport_controller::rbac::CONTROLLER,
            request.method().as_str(),
            &uri,
        );
        assert_eq!(request.method().as_str(), expected.method, "{uri}");
        assert!(
            uri.starts_with(&expected.path),
            "expected {} {}, got {uri}",
            expected.method,
            expected.path
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (expected.check)(&body);
        // A status patch carries no metadata: answer with the whole Space.
        let body = if body.get("metadata").is_none() && body.get("status").is_some() {
            let mut whole = space.clone();
            whole["status"] = body["status"].clone();
            whole
        } else {
            body
        };
        let reply = serde_json::to_vec(&(expected.reply)(&body)).unwrap();
        send.send_response(Response::builder().body(Body::from(reply)).unwrap());
    }
    // Nothing more may come, not even from a task the reconcile left behind.
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        panic!("unexpected call: {} {}", request.method(), request.uri());
    }
}

const SPACE: &str = "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/gradio-hello";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/team/deployments/gradio-hello?";
const SERVICE: &str = "/api/v1/namespaces/team/services/gradio-hello?";

fn status_call(stage: &'static str) -> Call {
    call("PATCH", format!("{SPACE}/status?")).check(move |b| {
        assert_eq!(b["status"]["stage"], stage, "{b}");
    })
}

fn space_json(s: &Space) -> Value {
    serde_json::to_value(s).unwrap()
}

fn replicas_are(n: i64) -> impl Fn(&Value) + Send {
    move |b| assert_eq!(b["spec"]["replicas"], n, "{b}")
}

fn ready(n: i64) -> impl Fn(&Value) -> Value + Send {
    move |b| {
        let mut b = b.clone();
        b["status"] = json!({"readyReplicas": n});
        b
    }
}

#[tokio::test]
async fn creation_adds_the_finalizer_first() {
    let space = base();
    let echo = space_json(&space);
    let action = run(
        space,
        vec![
            call("PATCH", SPACE)
                .check(|b| {
                    assert!(b.to_string().contains(FINALIZER), "{b}");
                })
                .reply(move |_| {
                    let mut s = echo.clone();
                    s["metadata"]["finalizers"] = json!([FINALIZER]);
                    s
                }),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_new_space_gets_its_objects_and_waits_for_an_image() {
    let action = run(
        with_finalizer(base()),
        vec![
            call("PATCH", DEPLOYMENT).check(replicas_are(0)),
            call("PATCH", SERVICE).check(|b| assert_eq!(b["spec"]["ports"][0]["targetPort"], 7860)),
            status_call("BUILDING").check(|b| {
                assert_eq!(b["status"]["url"], "http://team-gradio-hello.localhost");
                assert_eq!(b["status"]["observedGeneration"], 3);
            }),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_built_space_runs_once_a_replica_is_ready() {
    let space = built(with_finalizer(base()), Stage::AppStarting, NOW);
    run(
        space,
        vec![
            call("PATCH", DEPLOYMENT)
                .check(replicas_are(1))
                .reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING"),
        ],
    )
    .await;
}

#[tokio::test]
async fn updating_the_hardware_changes_resources_and_gpu_limits() {
    let mut space = built(with_finalizer(base()), Stage::Running, NOW);
    space.spec.hardware = Some("a10g-largex2".into());
    run(
        space,
        vec![
            call("PATCH", DEPLOYMENT)
                .check(|b| {
                    let limits =
                        &b["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
                    assert_eq!(limits["nvidia.com/gpu"], "2", "{b}");
                    assert_eq!(limits["cpu"], "24000m");
                })
                .reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING")
                .check(|b| assert_eq!(b["status"]["hardware"]["requested"], "a10g-largex2")),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_idle_space_sleeps_scaled_to_zero() {
    let mut space = built(
        with_finalizer(base()),
        Stage::Running,
        "2026-06-01T10:00:00Z",
    );
    space.spec.sleep_time_seconds = Some(3600);
    run(
        space,
        vec![
            call("PATCH", DEPLOYMENT).check(replicas_are(0)),
            call("PATCH", SERVICE),
            status_call("STOPPED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_wake_request_scales_a_sleeping_space_up() {
    let mut space = built(
        with_finalizer(base()),
        Stage::Stopped,
        "2026-06-01T10:00:00Z",
    );
    space
        .annotations_mut()
        .insert(WAKE_ANNOTATION.into(), "2026-06-01T11:59:58Z".into());
    run(
        space,
        vec![
            // The wake counts as activity, merged like the proxies' reports.
            call("PATCH", format!("{SPACE}/status?")).check(|b| {
                assert_eq!(b, &json!({"status": {"lastActivity": NOW}}));
            }),
            call("PATCH", DEPLOYMENT).check(replicas_are(1)),
            call("PATCH", SERVICE),
            status_call("APP_STARTING").check(|b| {
                assert!(b["status"].get("lastActivity").is_none(), "{b}");
            }),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_invalid_space_reports_config_error_and_waits_for_a_change() {
    let mut space = built(with_finalizer(base()), Stage::Running, NOW);
    space.spec.hardware = Some("warp-drive".into());
    let action = run(
        space,
        vec![status_call("CONFIG_ERROR").check(|b| {
            assert!(
                b["status"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("warp-drive"),
                "{b}"
            );
        })],
    )
    .await;
    assert_eq!(action, Action::await_change(), "no requeue storm");
}

#[tokio::test]
async fn deletion_reports_deleting_then_releases_the_finalizer() {
    let mut space = built(with_finalizer(base()), Stage::Running, NOW);
    space.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(NOW.parse().unwrap()),
    );
    let echo = space_json(&space);
    run(
        space,
        vec![
            status_call("DELETING"),
            call("PATCH", SPACE)
                .check(|b| {
                    let ops = b.to_string();
                    assert!(
                        ops.contains(r#""op":"remove""#) && ops.contains("/metadata/finalizers"),
                        "{b}"
                    );
                })
                .reply(move |_| echo.clone()),
        ],
    )
    .await;
}

/// A builder that answers at once, as told, and logs what it was asked.
struct FakeBuilder(Result<&'static str, BuildError>);

impl ImageBuilder for FakeBuilder {
    fn build(
        &self,
        job: BuildJob,
        log: Arc<LogBook>,
    ) -> BoxFuture<'static, Result<Built, BuildError>> {
        let answer = self.0.clone();
        Box::pin(async move {
            log.push(format!("building {} from {}", job.commit, job.source.url));
            assert_eq!(
                job.source.url,
                "http://hub.spaceport:7860/spaces/spaceport/gradio-hello"
            );
            let image = answer?;
            if let Some(token) = job.secrets.get("HF_TOKEN") {
                assert_eq!(token, "hf_secret", "the Secret's value reaches the build");
            }
            Ok(Built {
                image: image.into(),
                commit: job.commit,
                config: base().spec.config.unwrap(),
            })
        })
    }
}

fn with_builder(answer: Result<&'static str, BuildError>) -> impl FnOnce(&mut Context) {
    move |ctx| {
        ctx.builds = Builds::new(Some(Arc::new(FakeBuilder(answer))));
        ctx.hub.url = "http://hub.spaceport:7860".into();
        ctx.recorder = Some(Recorder::new(
            ctx.client.clone(),
            Reporter {
                controller: "spaceport-controller".into(),
                instance: None,
            },
        ));
    }
}

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team/events?";

fn event_call(reason: &'static str) -> Call {
    call("POST", EVENTS).check(move |b| assert_eq!(b["reason"], reason, "{b}"))
}

fn at_commit(mut s: Space, commit: &str) -> Space {
    s.annotations_mut()
        .insert(COMMIT_ANNOTATION.into(), commit.into());
    s
}

const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";

#[tokio::test]
async fn a_new_commit_builds_while_the_old_version_serves_then_rolls_out() {
    let mut space = at_commit(built(with_finalizer(base()), Stage::Running, NOW), NEW);
    space.status.as_mut().unwrap().observed_commit = Some(OLD.into());
    space.spec.secret_refs = vec!["gradio-hello-secrets".into()];
    run_with(
        space.clone(),
        vec![
            // The build secrets are read when the build starts.
            call(
                "GET",
                "/api/v1/namespaces/team/secrets/gradio-hello-secrets",
            )
            .reply(|_| {
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "gradio-hello-secrets", "namespace": "team"},
                       "data": {"HF_TOKEN": "aGZfc2VjcmV0"}})
            }),
            call("PATCH", DEPLOYMENT)
                .check(|b| {
                    let image = &b["spec"]["template"]["spec"]["containers"][0]["image"];
                    assert_eq!(
                        image, "registry.local/team/gradio-hello:abc",
                        "the old image serves"
                    );
                })
                .reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING_BUILDING").check(|b| {
                assert_eq!(b["status"]["build"]["commit"], NEW);
                assert_eq!(b["status"]["build"]["result"], "Running");
            }),
            event_call("Building"),
            // The build's outcome, from its own task, after the reconcile's status.
            call("PATCH", format!("{SPACE}/status?")).check(|b| {
                assert_eq!(
                    b["status"]["image"],
                    "registry.local/team/gradio-hello:2222"
                );
                assert_eq!(b["status"]["observedCommit"], NEW);
                assert_eq!(b["status"]["build"]["result"], "Succeeded");
            }),
        ],
        with_builder(Ok("registry.local/team/gradio-hello:2222")),
    )
    .await;

    // The status change brings the next reconcile, which rolls out.
    let status = space.status.as_mut().unwrap();
    status.stage = Some(Stage::RunningBuilding);
    status.image = Some("registry.local/team/gradio-hello:2222".into());
    status.observed_commit = Some(NEW.into());
    status.build = Some(BuildStatus {
        commit: NEW.into(),
        result: BuildResult::Succeeded,
        message: None,
        started: Some(NOW.into()),
        finished: Some(NOW.into()),
    });
    run_with(
        space,
        vec![
            call("PATCH", DEPLOYMENT)
                .check(|b| {
                    let image = &b["spec"]["template"]["spec"]["containers"][0]["image"];
                    assert_eq!(image, "registry.local/team/gradio-hello:2222");
                })
                .reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING"),
            event_call("Running"),
        ],
        with_builder(Err(BuildError::Failed("no second build may start".into()))),
    )
    .await;
}

#[tokio::test]
async fn a_failed_build_reports_build_error_and_keeps_the_old_version() {
    let mut space = at_commit(built(with_finalizer(base()), Stage::Running, NOW), NEW);
    space.status.as_mut().unwrap().observed_commit = Some(OLD.into());
    space.meta_mut().finalizers = Some(vec![FINALIZER.into()]);
    run_with(
        space.clone(),
        vec![
            call("PATCH", DEPLOYMENT).reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING_BUILDING"),
            event_call("Building"),
            call("PATCH", format!("{SPACE}/status?")).check(|b| {
                assert_eq!(b["status"]["build"]["result"], "Failed");
                assert!(b["status"].get("image").is_none(), "{b}");
                assert!(
                    b["status"]["build"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("step 3/5")
                );
            }),
        ],
        with_builder(Err(BuildError::Failed(
            "RUN pip install failed at step 3/5".into(),
        ))),
    )
    .await;

    let status = space.status.as_mut().unwrap();
    status.stage = Some(Stage::RunningBuilding);
    status.build = Some(BuildStatus {
        commit: NEW.into(),
        result: BuildResult::Failed,
        message: Some("RUN pip install failed at step 3/5".into()),
        started: Some(NOW.into()),
        finished: Some(NOW.into()),
    });
    run_with(
        space,
        vec![
            call("PATCH", DEPLOYMENT)
                .check(|b| {
                    let image = &b["spec"]["template"]["spec"]["containers"][0]["image"];
                    assert_eq!(
                        image, "registry.local/team/gradio-hello:abc",
                        "the old image stays"
                    );
                })
                .reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("BUILD_ERROR").check(|b| {
                assert!(
                    b["status"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("step 3/5"),
                    "{b}"
                );
                let built = b["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == "Built")
                    .unwrap();
                assert_eq!(built["status"], "False", "{b}");
                assert_eq!(built["reason"], "BuildFailed", "{b}");
                assert_eq!(built["lastTransitionTime"], NOW, "{b}");
            }),
            event_call("BuildFailed").check(|b| assert_eq!(b["type"], "Warning", "{b}")),
        ],
        with_builder(Ok("never")),
    )
    .await;
}

#[tokio::test]
async fn a_reconcile_from_a_cache_older_than_the_builds_outcome_keeps_the_outcome() {
    let mut space = at_commit(built(with_finalizer(base()), Stage::Running, NOW), NEW);
    space.status.as_mut().unwrap().observed_commit = Some(OLD.into());
    // What the cache holds after the first reconcile's status write: the
    // build running. The outcome's patch has not reached the cache yet.
    let mut stale = space.clone();
    let status = stale.status.as_mut().unwrap();
    status.stage = Some(Stage::RunningBuilding);
    status.build = Some(BuildStatus {
        commit: NEW.into(),
        result: BuildResult::Running,
        message: None,
        started: Some(NOW.into()),
        finished: None,
    });
    let new_image = |b: &Value| {
        let image = &b["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(image, "registry.local/team/gradio-hello:2222", "{b}");
    };
    run_seq(
        vec![space, stale],
        vec![
            call("PATCH", DEPLOYMENT).reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING_BUILDING"),
            event_call("Building"),
            call("PATCH", format!("{SPACE}/status?")),
            // The stale reconcile rolls out the new image and writes the
            // outcome again instead of a running build.
            call("PATCH", DEPLOYMENT).check(new_image).reply(ready(1)),
            call("PATCH", SERVICE),
            status_call("RUNNING").check(|b| {
                assert_eq!(b["status"]["build"]["result"], "Succeeded", "{b}");
                assert_eq!(b["status"]["observedCommit"], NEW);
            }),
            event_call("Running"),
        ],
        with_builder(Ok("registry.local/team/gradio-hello:2222")),
    )
    .await;
}
