use super::*;
use serde_json::{Value, json};

/// A Space in `team`, built up by the helpers below.
fn space(name: &str) -> Space {
    serde_json::from_value(json!({
        "apiVersion": "spaceport.dev/v1alpha1",
        "kind": "Space",
        "metadata": {"name": name, "namespace": "team",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"source": {"image": "registry.local/app:1"}},
    }))
    .unwrap()
}

fn with(mut s: Space, stage: &str, message: Option<&str>) -> Space {
    let mut status = serde_json::to_value(s.status.clone().unwrap_or_default()).unwrap();
    status["stage"] = json!(stage);
    if let Some(m) = message {
        status["message"] = json!(m);
    }
    s.status = Some(serde_json::from_value(status).unwrap());
    s
}

fn running(name: &str) -> Space {
    with(space(name), "RUNNING", Some("1 replica(s) ready"))
}

fn slice(service: &str, port: i32, endpoints: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abcde"), "namespace": "team",
                     "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn ready(ip: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": true}})
}

fn fold_of(spaces: Vec<Space>, slices: Vec<EndpointSlice>) -> Snapshot {
    let spaces: Vec<_> = spaces.into_iter().map(Arc::new).collect();
    let slices: Vec<_> = slices.into_iter().map(Arc::new).collect();
    fold(&spaces, &slices)
}

fn id(s: &str) -> SpaceId {
    s.parse().unwrap()
}

#[test]
fn a_running_space_is_served_by_its_ready_endpoints_on_the_target_port() {
    let not_ready = json!({"addresses": ["10.0.0.9"], "conditions": {"ready": false}});
    let unknown = json!({"addresses": ["10.0.0.3"]});
    let snap = fold_of(
        vec![running("demo")],
        vec![
            slice("demo", 7860, json!([ready("10.0.0.2"), not_ready, unknown])),
            slice("demo", 7860, json!([ready("10.0.0.1"), ready("10.0.0.2")])),
            slice("other", 9999, json!([ready("10.0.0.7")])),
        ],
    );
    assert_eq!(snap.routes.len(), 1);
    let route = &snap.routes[0];
    assert_eq!(route.space, id("team/demo"));
    assert_eq!(route.space.host_label(), "team-demo");
    assert_eq!(route.state, SpaceState::Running);
    assert_eq!(
        route.upstreams,
        ["10.0.0.1:7860", "10.0.0.2:7860", "10.0.0.3:7860"]
    );
    assert_eq!(
        snap.spaces[&id("team/demo")].availability,
        Availability::Serving
    );
}

#[test]
fn slices_of_another_namespace_or_port_are_not_the_spaces() {
    let mut elsewhere = slice("demo", 7860, json!([ready("10.9.9.9")]));
    elsewhere.metadata.namespace = Some("other".into());
    let mut two_ports = slice("demo", 7860, json!([ready("10.0.0.5")]));
    two_ports.ports = Some(vec![
        serde_json::from_value(json!({"name": "metrics", "port": 9100})).unwrap(),
        serde_json::from_value(json!({"name": "grpc", "port": 9000})).unwrap(),
    ]);
    let snap = fold_of(vec![running("demo")], vec![elsewhere, two_ports]);
    assert!(snap.routes[0].upstreams.is_empty());
    assert_eq!(snap.routes[0].state, SpaceState::Stopped);
    assert_eq!(
        snap.spaces[&id("team/demo")].availability,
        Availability::Starting,
        "serving without a ready endpoint is held, not broken"
    );
}

#[test]
fn ipv6_endpoints_are_bracketed_and_forged_addresses_dropped() {
    let mut v6 = slice("demo", 80, json!([ready("fd00::1")]));
    v6.address_type = "IPv6".into();
    let forged = slice(
        "demo",
        80,
        json!([
            ready("evil.example/x"),
            ready("10.0.0.1@x"),
            ready("fd00::2")
        ]),
    );
    let snap = fold_of(vec![running("demo")], vec![v6, forged]);
    assert_eq!(snap.routes[0].upstreams, ["[fd00::1]:80"]);
}

#[test]
fn a_stopped_space_is_asleep_so_the_proxy_wakes_it() {
    let mut s = with(space("nap"), "STOPPED", Some("asleep"));
    s.metadata.annotations = Some(
        [(
            WAKE_ANNOTATION.to_owned(),
            "2026-06-01T12:00:00Z".to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    let mut status = s.status.clone().unwrap();
    status.last_activity = Some("2026-06-01T11:00:00Z".into());
    s.status = Some(status);
    let snap = fold_of(vec![s], vec![]);
    assert_eq!(snap.routes[0].state, SpaceState::Stopped);
    let view = &snap.spaces[&id("team/nap")];
    assert_eq!(view.availability, Availability::Asleep);
    assert_eq!(
        view.last_activity,
        Some("2026-06-01T11:00:00Z".parse().unwrap())
    );
    assert!(view.wake_pending());
}

#[test]
fn paused_and_failed_spaces_are_unavailable_with_the_reason() {
    let mut paused = running("held");
    paused.spec.paused = true;
    let broken = with(space("broken"), "BUILD_ERROR", Some("pip failed: no torch"));
    let silent = with(space("silent"), "RUNTIME_ERROR", None);
    let mut going = running("going");
    going.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-01-02T00:00:00Z")).unwrap());
    let snap = fold_of(
        vec![paused, broken, silent, going],
        vec![slice("held", 80, json!([ready("10.0.0.1")]))],
    );
    let reason = |n: &str| match &snap.spaces[&id(&format!("team/{n}"))].availability {
        Availability::Unavailable(m) => m.clone(),
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(reason("held"), "the Space is paused by its owner");
    assert_eq!(
        reason("broken"),
        "the Space is BUILD_ERROR: pip failed: no torch"
    );
    assert_eq!(reason("silent"), "the Space is RUNTIME_ERROR; see its page");
    assert_eq!(reason("going"), "the Space is being deleted");
    assert!(snap.routes.iter().all(|r| r.state == SpaceState::Stopped));
}

#[test]
fn building_starting_and_new_spaces_are_held_while_they_come_up() {
    let snap = fold_of(
        vec![
            space("new"),
            with(space("build"), "BUILDING", None),
            with(space("boot"), "APP_STARTING", None),
        ],
        vec![slice("boot", 80, json!([ready("10.0.0.1")]))],
    );
    for n in ["new", "build", "boot"] {
        assert_eq!(
            snap.spaces[&id(&format!("team/{n}"))].availability,
            Availability::Starting,
            "{n}"
        );
    }
    let boot = snap
        .routes
        .iter()
        .find(|r| r.space.name() == "boot")
        .unwrap();
    assert_eq!(boot.upstreams, ["10.0.0.1:80"], "probed once it answers");
    assert_eq!(boot.state, SpaceState::Stopped);
}

#[test]
fn private_visibility_and_embedding_rules_follow_the_space() {
    let mut s = running("secret");
    s.spec.visibility = crd::Visibility::Private;
    s.spec.config = Some(
        serde_json::from_value(json!({
            "sdk": "gradio",
            "disable_embedding": true,
            "custom_headers": {"cross-origin-opener-policy": "same-origin"},
        }))
        .unwrap(),
    );
    let snap = fold_of(
        vec![s, running("open")],
        vec![
            slice("secret", 80, json!([ready("10.0.0.1")])),
            slice("open", 80, json!([ready("10.0.0.2")])),
        ],
    );
    let secret = &snap
        .routes
        .iter()
        .find(|r| r.space.name() == "secret")
        .unwrap();
    assert_eq!(secret.visibility, Visibility::Private);
    assert!(secret.disable_embedding);
    assert_eq!(
        secret
            .custom_headers
            .get("cross-origin-opener-policy")
            .map(String::as_str),
        Some("same-origin")
    );
    let open = &snap
        .routes
        .iter()
        .find(|r| r.space.name() == "open")
        .unwrap();
    assert_eq!(open.visibility, Visibility::Public);
    assert!(!open.disable_embedding && open.custom_headers.is_empty());
}

#[test]
fn a_contested_host_goes_to_the_older_space_and_the_table_still_builds() {
    let mut older = running("b-c");
    older.metadata.namespace = Some("a".into());
    let mut newer = running("c");
    newer.metadata.namespace = Some("a-b".into());
    newer.metadata.creation_timestamp =
        Some(serde_json::from_value(json!("2026-02-01T00:00:00Z")).unwrap());
    let snap = fold_of(vec![newer, older, running("fine")], vec![]);
    let ids: Vec<String> = snap.routes.iter().map(|r| r.space.to_string()).collect();
    assert_eq!(ids, ["a/b-c", "team/fine"]);
    spaceport_proxy::RouteTable::standalone(snap.routes, Some("spaces.test"), "/apps")
        .expect("the table builds");
}

#[test]
fn a_space_the_hub_made_is_served_under_the_hubs_id_and_found_by_its_resource() {
    let mut s = running("alice-demo");
    s.annotations_mut()
        .insert(crd::HUB_SPACE_ANNOTATION.into(), "alice/demo".into());
    let snap = fold_of(
        vec![s],
        vec![slice("alice-demo", 7860, json!([ready("10.0.0.5")]))],
    );
    let route = &snap.routes[0];
    assert_eq!(route.space, id("alice/demo"), "the hub's URL and owner");
    assert_eq!(route.upstreams, ["10.0.0.5:7860"]);
    assert_eq!(
        snap.spaces[&id("alice/demo")].resource,
        ("team".to_owned(), "alice-demo".to_owned()),
        "wakes and activity go to the resource"
    );
}
