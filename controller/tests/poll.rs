//! One poll of a Space's git source against a mocked API server
//! (tower-test) and a real repository on disk: the calls expected, in
//! order, then no other.

mod support;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use spaceport_controller::crd::Space;
use spaceport_controller::source::poll::poll_space;
use std::time::Duration;
use support::{C1, SPACES, assert_granted, repo, space};

/// Runs one poll of `space` while the verifier plays `calls`: (method,
/// path prefix, reply).
async fn poll(space: &Space, calls: Vec<(&'static str, String, Value)>) -> Result<String, String> {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let verifier = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (method, path, reply) in calls {
            let (request, send) = handle.next_request().await.expect("a call");
            assert_eq!(request.method().as_str(), method);
            let uri = request.uri().to_string();
            assert_granted(&spaceport_controller::rbac::CONTROLLER, method, &uri);
            assert!(uri.starts_with(&path), "expected {path}, got {uri}");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            bodies.push(serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null));
            let status = reply["code"].as_u64().unwrap_or(200) as u16;
            let reply = serde_json::to_vec(&reply).unwrap();
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(reply))
                    .unwrap(),
            );
        }
        let extra = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
        assert!(extra.is_err(), "an unexpected API call");
        bodies
    });
    let result = tokio::time::timeout(Duration::from_secs(20), poll_space(&client, space))
        .await
        .expect("the poll finished");
    let bodies = verifier
        .await
        .expect("every expected call came, and no other");
    if let Some(patch) = bodies.last().filter(|b| b.get("metadata").is_some()) {
        assert_eq!(
            patch["metadata"]["annotations"]["spaceport.dev/commit"],
            json!(result.clone().unwrap())
        );
    }
    result
}

#[tokio::test]
async fn the_poller_moves_the_annotation_only_when_the_ref_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (url, real) = repo(dir.path());
    let behind = space("app", &url, "main", Some(C1));
    let reply = serde_json::to_value(&behind).unwrap();
    let patch = ("PATCH", format!("{SPACES}/app?"), reply);
    assert_eq!(poll(&behind, vec![patch]).await.unwrap(), real);
    let current = space("app", &url, "main", Some(&real));
    assert_eq!(poll(&current, vec![]).await.unwrap(), real);
    let err = poll(&space("app", &url, "gone", None), vec![])
        .await
        .unwrap_err();
    assert_eq!(err, format!("{url} has no branch or tag 'gone'"));
}

#[tokio::test]
async fn the_poller_reads_the_credentials_secret_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (url, real) = repo(dir.path());
    let mut s = space("app", &url, "main", None);
    s.spec.source.git.as_mut().unwrap().credentials_secret = Some("creds".into());
    let secret = json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "creds", "namespace": "team" },
        "data": { "username": "Ym9i", "password": "aHVudGVyMg==" } });
    let get = (
        "GET",
        "/api/v1/namespaces/team/secrets/creds".to_owned(),
        secret,
    );
    let reply = serde_json::to_value(&s).unwrap();
    let patch = ("PATCH", format!("{SPACES}/app?"), reply);
    assert_eq!(poll(&s, vec![get, patch]).await.unwrap(), real);
    let missing = json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": "secrets \"creds\" not found", "reason": "NotFound", "code": 404 });
    let get = (
        "GET",
        "/api/v1/namespaces/team/secrets/creds".to_owned(),
        missing,
    );
    let err = poll(&s, vec![get]).await.unwrap_err();
    assert!(
        err.starts_with("failed to read the Secret team/creds: "),
        "{err}"
    );
}
