use super::*;

use spaceport_controller::crd::Space;
use spaceport_controller::proxy::Directory;
use spaceport_controller::proxy::activity::ActivitySink;
use spaceport_controller::proxy::routes::{Availability, fold};
use spaceport_controller::proxy::waker::SpaceWaker;
use spaceport_controller::proxy::watch::KubeRoutes;
use spaceport_proxy::{
    AnalyticsSink, HyperLogLog, Route, RouteSource, SpaceId, SpaceReport, SpaceState, Waker,
};

fn id(s: &str) -> SpaceId {
    s.parse().unwrap()
}

fn by_id(routes: Vec<Route>) -> std::collections::BTreeMap<String, Route> {
    routes
        .into_iter()
        .map(|r| (r.space.to_string(), r))
        .collect()
}

/// The directory as the route source would leave it for these Spaces.
fn directory_of(spaces: Vec<Value>) -> Directory {
    let spaces: Vec<Arc<Space>> = spaces
        .into_iter()
        .map(|v| Arc::new(serde_json::from_value(v).unwrap()))
        .collect();
    let directory = Directory::default();
    directory.replace(fold(&spaces, &[]).spaces);
    directory
}

#[tokio::test]
async fn routes_follow_watched_spaces_and_slices_and_a_burst_is_one_swap() {
    let (spaces_tx, spaces_watch) = watch();
    let (slices_tx, slices_watch) = watch();
    let (client, api) = MockApi::start(vec![
        expect(
            "GET",
            SPACES,
            list(
                "Space",
                "spaceport.dev/v1alpha1",
                vec![
                    space("team", "demo", "RUNNING"),
                    space("team", "nap", "STOPPED"),
                ],
            ),
        ),
        expect("GET", SPACES, spaces_watch),
        expect(
            "GET",
            SLICES,
            list(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                vec![slice("team", "demo", &["10.0.0.1"], 7860)],
            ),
        )
        .query("labelSelector=spaceport.dev%2Fspace"),
        expect("GET", SLICES, slices_watch).query("labelSelector=spaceport.dev%2Fspace"),
    ]);
    let directory = Directory::default();
    let mut source = KubeRoutes::start(client, &[], directory.clone());

    let first = tokio::time::timeout(Duration::from_secs(10), source.next_snapshot())
        .await
        .expect("a first snapshot")
        .unwrap()
        .unwrap();
    let routes = by_id(first);
    assert_eq!(routes.len(), 2);
    assert_eq!(routes["team/demo"].upstreams, ["10.0.0.1:7860"]);
    assert_eq!(routes["team/demo"].state, SpaceState::Running);
    assert_eq!(routes["team/nap"].state, SpaceState::Stopped);
    assert_eq!(
        directory.get(&id("team/nap")).unwrap().availability,
        Availability::Asleep
    );

    // A wake lands: the Space runs again and its endpoints turn up, in a
    // burst of events 50 ms apart that the source is already waiting on.
    let burst = async {
        spaces_tx
            .send(event("MODIFIED", space("team", "nap", "RUNNING"), "2"))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let nap = slice("team", "nap", &["10.0.0.2"], 8501);
        slices_tx.send(event("ADDED", nap, "3")).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let demo = slice("team", "demo", &["10.0.0.1", "10.0.0.3"], 7860);
        slices_tx.send(event("MODIFIED", demo, "4")).unwrap();
    };
    let (next, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), source.next_snapshot()),
        burst
    );
    let next = next.expect("a snapshot after the events").unwrap().unwrap();
    let routes = by_id(next);
    assert_eq!(routes["team/nap"].state, SpaceState::Running);
    assert_eq!(routes["team/nap"].upstreams, ["10.0.0.2:8501"]);
    assert_eq!(
        routes["team/demo"].upstreams,
        ["10.0.0.1:7860", "10.0.0.3:7860"]
    );
    assert_eq!(
        directory.get(&id("team/nap")).unwrap().availability,
        Availability::Serving
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next_snapshot())
            .await
            .is_err(),
        "the burst gave a second snapshot"
    );

    // Activity moves on: the directory sees it, the table is left alone.
    let mut busy = space("team", "demo", "RUNNING");
    busy["status"]["lastActivity"] = json!("2026-06-01T12:05:00Z");
    spaces_tx.send(event("MODIFIED", busy, "5")).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next_snapshot())
            .await
            .is_err(),
        "a change to nothing routed gave a snapshot"
    );
    let seen = directory.get(&id("team/demo")).unwrap().last_activity;
    assert_eq!(seen, Some("2026-06-01T12:05:00Z".parse().unwrap()));

    spaces_tx
        .send(event("DELETED", space("team", "demo", "RUNNING"), "6"))
        .unwrap();
    let last = source.next_snapshot().await.unwrap().unwrap();
    assert_eq!(by_id(last).keys().collect::<Vec<_>>(), ["team/nap"]);
    api.verify().await;
}

#[tokio::test]
async fn only_the_given_namespaces_are_watched() {
    let mut expected = Vec::new();
    let mut feeds = Vec::new();
    for ns in ["lab", "team"] {
        let (tx, w) = watch();
        feeds.push(tx);
        let spaces = format!("/apis/spaceport.dev/v1alpha1/namespaces/{ns}/spaces");
        expected.push(expect(
            "GET",
            &spaces,
            list(
                "Space",
                "spaceport.dev/v1alpha1",
                vec![space(ns, "app", "RUNNING")],
            ),
        ));
        expected.push(expect("GET", spaces, w));
        let (tx, w) = watch();
        feeds.push(tx);
        let slices = format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices");
        expected.push(expect(
            "GET",
            &slices,
            list(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                vec![slice(ns, "app", &["10.1.0.1"], 80)],
            ),
        ));
        expected.push(expect("GET", slices, w));
    }
    let (client, api) = MockApi::start(expected);
    let names = ["team".to_owned(), "lab".to_owned()];
    let mut source = KubeRoutes::start(client, &names, Directory::default());
    let routes = by_id(source.next_snapshot().await.unwrap().unwrap());
    assert_eq!(routes.keys().collect::<Vec<_>>(), ["lab/app", "team/app"]);
    api.verify().await;
}

#[tokio::test]
async fn the_waker_patches_the_wake_annotation_of_a_sleeping_space_only() {
    let (clock, _) = clock();
    let mut paused = space("team", "held", "PAUSED");
    paused["spec"]["paused"] = json!(true);
    let mut asked = space("team", "asked", "STOPPED");
    asked["metadata"]["annotations"] = json!({WAKE_ANNOTATION: "2026-06-01T11:30:00Z"});
    let directory = directory_of(vec![
        space("team", "nap", "STOPPED"),
        space("team", "up", "RUNNING"),
        paused,
        asked,
    ]);
    let (client, api) = MockApi::start(vec![
        expect(
            "PATCH",
            "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/nap",
            Reply::Json(200, space("team", "nap", "STOPPED")),
        )
        .query("fieldManager=spaceport-proxy")
        .check(|ctype, body| {
            merge_patch(ctype);
            assert_eq!(
                body,
                &json!({"metadata": {"annotations": {WAKE_ANNOTATION: NOW}}})
            );
        }),
    ]);
    let waker = SpaceWaker::new(client, directory, clock);
    waker
        .wake(&id("team/nap"))
        .await
        .expect("the wake was asked");
    waker
        .wake(&id("team/up"))
        .await
        .expect("a running Space needs nothing");
    waker
        .wake(&id("team/asked"))
        .await
        .expect("a pending request is enough");
    let paused = waker.wake(&id("team/held")).await.unwrap_err();
    assert_eq!(
        paused.to_string(),
        "failed to wake: the Space is paused by its owner"
    );
    let gone = waker.wake(&id("team/gone")).await.unwrap_err();
    assert!(gone.to_string().contains("no longer exists"), "{gone}");
    api.verify().await;
}

#[tokio::test]
async fn a_refused_wake_tells_the_visitor_why_in_words() {
    let (clock, _) = clock();
    let directory = directory_of(vec![space("team", "nap", "STOPPED")]);
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "spaces is forbidden", "reason": "Forbidden", "code": 403});
    let (client, api) = MockApi::start(vec![expect(
        "PATCH",
        "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/nap",
        Reply::Json(403, forbidden),
    )]);
    let err = SpaceWaker::new(client, directory, clock)
        .wake(&id("team/nap"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not allowed to wake"), "{err}");
    api.verify().await;
}

fn report(space: &str, visits: u64, requests: u64) -> SpaceReport {
    SpaceReport {
        space: id(space),
        day: 20_000,
        visits,
        requests_by_class: [0, requests, 0, 0, 0],
        bytes_in: 0,
        bytes_out: 0,
        wakes: 0,
        unique_visitors: HyperLogLog::default(),
    }
}

#[tokio::test]
async fn the_sink_moves_last_activity_forward_at_most_every_30_seconds() {
    let (clock, offset) = clock();
    let mut newer = space("team", "newer", "RUNNING");
    newer["status"]["lastActivity"] = json!("2026-06-01T12:00:10Z");
    let directory = directory_of(vec![
        space("team", "demo", "RUNNING"),
        space("team", "api", "RUNNING"),
        newer,
        space("team", "nap", "STOPPED"),
    ]);
    let status_patch = |name: &str, at: &'static str| {
        expect(
            "PATCH",
            format!("/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/{name}/status"),
            Reply::Json(200, space("team", name, "RUNNING")),
        )
        .query("fieldManager=spaceport-proxy")
        .check(move |ctype, body| {
            merge_patch(ctype);
            assert_eq!(body, &json!({"status": {"lastActivity": at}}));
        })
    };
    let (client, api) = MockApi::start(vec![
        status_patch("demo", NOW),
        status_patch("api", NOW),
        status_patch("demo", "2026-06-01T12:00:31Z"),
    ]);
    let sink = ActivitySink::new(client, directory, clock);
    let batch = || {
        vec![
            report("team/demo", 2, 5),
            report("team/api", 0, 9),
            report("team/newer", 1, 1),
            report("team/nap", 0, 3),
            report("team/quiet", 0, 0),
        ]
    };
    sink.record(batch()).await;
    offset.store(10, Ordering::SeqCst);
    sink.record(vec![report("team/demo", 1, 1)]).await;
    offset.store(31, Ordering::SeqCst);
    sink.record(vec![report("team/demo", 1, 1)]).await;
    api.verify().await;
}
