//! The push webhooks against a mocked API server (tower-test): each
//! scenario lists the annotation patches it expects, in order; after them,
//! no further call may come. The Spaces sit in a real reflector store.

mod support;

use axum::body::Body as AxumBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use spaceport_controller::crd::Space;
use spaceport_controller::source::push::sign;
use spaceport_controller::source::webhook::router;
use std::time::Duration;
use support::{C1, C2, SPACES, assert_granted, repo, space};
use tower::ServiceExt;
use tower_test::mock::Handle;

const SECRET: &[u8] = b"hook secret";

/// Expects exactly these annotation patches (Space name, commit), in order,
/// then no other call.
async fn expect_patches(
    mut handle: Handle<Request<Body>, Response<Body>>,
    want: Vec<(String, String)>,
) -> Handle<Request<Body>, Response<Body>> {
    for (name, commit) in want {
        let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("the expected patch came")
            .expect("a call");
        assert_granted(
            &spaceport_controller::rbac::CONTROLLER,
            request.method().as_str(),
            &request.uri().to_string(),
        );
        assert_eq!(request.method(), "PATCH");
        let uri = request.uri().to_string();
        assert!(uri.starts_with(&format!("{SPACES}/{name}?")), "{uri}");
        assert_eq!(
            request.headers()["content-type"],
            "application/merge-patch+json"
        );
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({ "metadata": { "annotations": { "spaceport.dev/commit": commit } } })
        );
        let reply =
            serde_json::to_vec(&space(&name, "https://h/x", "main", Some(&commit))).unwrap();
        send.send_response(Response::builder().body(Body::from(reply)).unwrap());
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(
        extra.is_err(),
        "an unexpected API call: {:?}",
        extra.unwrap().map(|(r, _)| r.uri().clone())
    );
    handle
}

struct Hook {
    app: axum::Router,
    handle: Option<Handle<Request<Body>, Response<Body>>>,
}

fn hook(spaces: Vec<Space>, secret: Option<&[u8]>) -> Hook {
    let (store, mut writer) = reflector::store::<Space>();
    for s in spaces {
        writer.apply_watcher_event(&watcher::Event::Apply(s));
    }
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    Hook {
        app: router(store, client, secret.map(<[u8]>::to_vec)),
        handle: Some(handle),
    }
}

impl Hook {
    /// Sends a request while the verifier expects `patches`; returns the
    /// status and the JSON answer.
    async fn send(
        &mut self,
        request: Request<AxumBody>,
        patches: Vec<(&str, &str)>,
    ) -> (StatusCode, Value) {
        let want = patches
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c.to_owned()))
            .collect();
        let verifier = tokio::spawn(expect_patches(self.handle.take().unwrap(), want));
        let response =
            tokio::time::timeout(Duration::from_secs(20), self.app.clone().oneshot(request))
                .await
                .expect("the hook answered")
                .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let handle = verifier
            .await
            .expect("every expected call came, and no other");
        self.handle = Some(handle);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn push_body(r#ref: &str, after: &str, clone_url: &str) -> Vec<u8> {
    json!({
        "ref": r#ref, "before": C1, "after": after,
        "repository": { "clone_url": clone_url, "html_url": "https://git.example/org/app",
                        "ssh_url": "git@git.example:org/app.git" },
        "pusher": { "name": "alice" }
    })
    .to_string()
    .into_bytes()
}

fn request(
    path: &str,
    event: &str,
    signature: Option<(&str, String)>,
    body: Vec<u8>,
) -> Request<AxumBody> {
    let mut r = Request::post(path)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-gitea-event", event);
    if let Some((name, value)) = signature {
        r = r.header(name, value);
    }
    r.body(AxumBody::from(body)).unwrap()
}

fn github(body: Vec<u8>) -> Request<AxumBody> {
    let sig = sign(SECRET, &body);
    request(
        "/hooks/github",
        "push",
        Some(("x-hub-signature-256", sig)),
        body,
    )
}

#[tokio::test]
async fn a_signed_github_push_moves_the_commit_of_every_space_following_that_ref() {
    let mut h = hook(
        vec![
            space("by-ssh", "git@git.example:org/app.git", "main", Some(C1)),
            space(
                "by-https",
                "HTTPS://git.example/org/app/",
                "refs/heads/main",
                None,
            ),
            space(
                "up-to-date",
                "https://git.example/org/app",
                "main",
                Some(C2),
            ),
            space(
                "other-branch",
                "https://git.example/org/app",
                "dev",
                Some(C1),
            ),
            space(
                "other-repo",
                "https://git.example/org/else",
                "main",
                Some(C1),
            ),
        ],
        Some(SECRET),
    );
    let body = push_body("refs/heads/main", C2, "https://git.example/org/app.git");
    let (status, answer) = h
        .send(github(body), vec![("by-https", C2), ("by-ssh", C2)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({ "matched": 3 }));
}

#[tokio::test]
async fn gitea_and_spaceport_signatures_are_checked_in_their_own_headers() {
    let spaces = vec![space("app", "https://git.example/org/app", "v2", None)];
    let body = push_body("refs/tags/v2", C2, "https://git.example/org/app.git");
    let bare = sign(SECRET, &body).trim_start_matches("sha256=").to_owned();
    let mut h = hook(spaces.clone(), Some(SECRET));
    let r = request(
        "/hooks/gitea",
        "push",
        Some(("x-gitea-signature", bare)),
        body.clone(),
    );
    assert_eq!(h.send(r, vec![("app", C2)]).await.0, StatusCode::ACCEPTED);
    let mut h = hook(spaces, Some(SECRET));
    let sig = sign(SECRET, &body);
    let r = request(
        "/hooks/spaceport",
        "push",
        Some(("x-hub-signature-256", sig)),
        body,
    );
    assert_eq!(h.send(r, vec![("app", C2)]).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn forged_missing_and_sha1_signatures_are_401_and_touch_nothing() {
    let spaces = vec![space("app", "https://git.example/org/app", "main", None)];
    let body = push_body("refs/heads/main", C2, "https://git.example/org/app.git");
    let forged = sign(b"guessed", &body);
    let sha1 = format!("sha1={}", "ab".repeat(20));
    for signature in [Some(forged), Some(sha1), None] {
        let mut h = hook(spaces.clone(), Some(SECRET));
        let sig = signature.map(|s| ("x-hub-signature-256", s));
        let r = request("/hooks/github", "push", sig, body.clone());
        let (status, answer) = h.send(r, vec![]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("signature"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn ping_deletion_malformed_and_oversized_requests_get_their_answers() {
    let spaces = vec![space("app", "https://git.example/org/app", "main", None)];
    let mut h = hook(spaces.clone(), Some(SECRET));
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let sig = sign(SECRET, &ping);
    let r = request(
        "/hooks/github",
        "ping",
        Some(("x-hub-signature-256", sig)),
        ping,
    );
    assert_eq!(h.send(r, vec![]).await.0, StatusCode::OK);

    let mut h = hook(spaces.clone(), Some(SECRET));
    let deletion = push_body(
        "refs/heads/main",
        &"0".repeat(40),
        "https://git.example/org/app",
    );
    let (status, answer) = h.send(github(deletion), vec![]).await;
    assert_eq!(
        (status, answer),
        (StatusCode::ACCEPTED, json!({ "matched": 0 }))
    );

    let mut h = hook(spaces.clone(), Some(SECRET));
    let bad = push_body("refs/heads/main", "HEAD~1", "https://git.example/org/app");
    let (status, answer) = h.send(github(bad), vec![]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "'HEAD~1' is not a commit id");

    let mut h = hook(spaces, Some(SECRET));
    let mut huge = push_body("refs/heads/main", C2, "https://git.example/org/app");
    huge.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    let (status, _) = h.send(github(huge), vec![]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn without_a_secret_the_pushed_commit_is_not_trusted_but_resolved_again() {
    let dir = tempfile::tempdir().unwrap();
    let (url, real) = repo(dir.path());
    let mut h = hook(vec![space("app", &url, "main", Some(C1))], None);
    // The payload claims C2; the repository's main is at `real`.
    let body = push_body("refs/heads/main", C2, &url);
    let r = request("/hooks/spaceport", "push", None, body);
    let (status, answer) = h.send(r, vec![("app", &real)]).await;
    assert_eq!(
        (status, answer),
        (StatusCode::ACCEPTED, json!({ "matched": 1 }))
    );
    // A second unsigned push right after looks nothing up and patches nothing.
    let body = push_body("refs/heads/main", C2, &url);
    let r = request("/hooks/spaceport", "push", None, body);
    let (status, answer) = h.send(r, vec![]).await;
    assert_eq!(
        (status, answer),
        (StatusCode::ACCEPTED, json!({ "matched": 1 }))
    );
}
