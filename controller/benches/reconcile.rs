//! The controller at 10,000 Spaces: the pure build step, and the whole
//! reconcile (finalizer, server-side applies, status) against an in-process
//! API server that answers at once, so the figure is the controller's own
//! cost. Reports per-call p50/p99 and the process's peak RSS with all the
//! Spaces held in memory, as the controller's store holds them.
//!
//!     cargo bench -p spaceport-controller --bench reconcile

use http::{Request, Response};
use kube::client::Body;
use kube::{Client, Resource};
use serde_json::Value;
use spaceport_controller::crd::{Space, SpaceStatus};
use spaceport_controller::desired::{ControllerSettings, desired};
use spaceport_controller::reconcile::{Context, FINALIZER, reconcile};
use spaceport_runtime::stage::Stage;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPACES: usize = 10_000;
const FLAVORS: [&str; 4] = ["cpu-basic", "cpu-upgrade", "t4-small", "a10g-largex2"];

fn spaces() -> Vec<Space> {
    let text = include_str!("../../examples/gradio-hello/space.yaml");
    let template: Space = serde_norway::from_str(text).expect("example manifest");
    (0..SPACES)
        .map(|i| {
            let mut s = template.clone();
            s.meta_mut().name = Some(format!("space-{i}"));
            s.meta_mut().namespace = Some(format!("team-{}", i % 50));
            s.meta_mut().uid = Some(format!("uid-{i}"));
            s.meta_mut().finalizers = Some(vec![FINALIZER.into()]);
            s.spec.hardware = Some(FLAVORS[i % FLAVORS.len()].into());
            s.spec.variables.insert("INDEX".into(), i.to_string());
            s.status = Some(SpaceStatus {
                stage: Some(Stage::Running),
                image: Some(format!("registry.local/space-{i}:abc")),
                last_activity: Some("2026-06-01T12:00:00Z".into()),
                ..SpaceStatus::default()
            });
            s
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Answers every call at once: patches are echoed, a status patch gets a
/// whole Space back.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    space: Value,
) {
    while let Some((request, send)) = handle.next_request().await {
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let reply = if body.get("metadata").is_none() {
            let mut whole = space.clone();
            whole["status"] = body["status"].clone();
            whole
        } else {
            body
        };
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&reply).unwrap(),
        )));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let spaces = spaces();
    let settings = ControllerSettings::default();

    let mut pure = Vec::with_capacity(SPACES);
    for s in &spaces {
        let start = Instant::now();
        std::hint::black_box(desired(s, &settings).expect("valid"));
        pure.push(start.elapsed());
    }
    pure.sort();

    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let template = serde_json::to_value(&spaces[0]).unwrap();
    tokio::spawn(api_server(handle, template));
    let ctx = Arc::new(Context::new(Client::new(service, "default"), settings));
    let spaces: Vec<Arc<Space>> = spaces.into_iter().map(Arc::new).collect();
    let mut full = Vec::with_capacity(SPACES);
    let all = Instant::now();
    for s in &spaces {
        let start = Instant::now();
        reconcile(s.clone(), ctx.clone()).await.expect("reconcile");
        full.push(start.elapsed());
    }
    let total = all.elapsed();
    full.sort();

    println!("spaces: {SPACES} (flavors {FLAVORS:?})");
    println!(
        "pure build step: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&pure, 0.5),
        percentile(&pure, 0.99),
        pure[pure.len() - 1]
    );
    println!(
        "reconcile (3 API calls, mocked server): p50 {:?}, p99 {:?}, max {:?}, all {SPACES} in {:.2?}",
        percentile(&full, 0.5),
        percentile(&full, 0.99),
        full[full.len() - 1],
        total
    );
    println!(
        "peak RSS with {SPACES} Spaces held: {:.1} MB",
        peak_rss_mb()
    );
}
