//! End to end: the real proxy server on loopback, routes from the mocked
//! watchers, a real upstream; and the binary's refusal of bad settings.

use super::*;

use spaceport_controller::proxy::Directory;
use spaceport_controller::proxy::waker::SpaceWaker;
use spaceport_controller::proxy::watch::KubeRoutes;
use spaceport_proxy::{Proxy, ProxyConfig, WakeConfig};

async fn get(port: u16, host: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://127.0.0.1:{port}/"))
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_visit_reaches_the_endpoint_and_a_sleeping_space_is_woken() {
    // The app: a real HTTP server on loopback.
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello from the app" }));
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(upstream, app).await });

    let (spaces_tx, spaces_watch) = watch();
    let (slices_tx, slices_watch) = watch();
    let mut paused = space("team", "held", "PAUSED");
    paused["spec"]["paused"] = json!(true);
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
                    paused,
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
                vec![slice("team", "demo", &["127.0.0.1"], app_port)],
            ),
        ),
        expect("GET", SLICES, slices_watch),
        expect(
            "PATCH",
            "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/nap",
            Reply::Json(200, space("team", "nap", "STOPPED")),
        )
        .check(|ctype, body| {
            merge_patch(ctype);
            assert_eq!(
                body,
                &json!({"metadata": {"annotations": {WAKE_ANNOTATION: NOW}}})
            );
        }),
    ]);
    let (clock, _) = clock();
    let directory = Directory::default();
    let config = ProxyConfig {
        domain: Some("spaces.test".into()),
        wake: WakeConfig {
            api_hold: Duration::from_millis(300),
            browser_hold: Duration::from_millis(300),
            ..WakeConfig::default()
        },
        ..ProxyConfig::default()
    };
    let proxy = Proxy::builder(config)
        .waker(SpaceWaker::new(client.clone(), directory.clone(), clock))
        .build()
        .unwrap();
    proxy.drive(KubeRoutes::start(client, &[], directory));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = proxy.clone();
    tokio::spawn(async move { serving.serve(listener, None, std::future::pending()).await });
    for _ in 0..250 {
        if proxy.routes().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.routes().len(), 3, "the routes arrived");

    assert_eq!(
        get(port, "team-demo.spaces.test").await,
        (200, "hello from the app".into())
    );
    let (status, body) = get(port, "team-held.spaces.test").await;
    assert_eq!(status, 503);
    assert!(body.contains("paused by its owner"), "{body}");
    let (status, _) = get(port, "team-nap.spaces.test").await;
    assert_eq!(status, 503, "held while it wakes");
    api.verify().await;

    // The controller scales it up: the Space starts and its endpoint answers.
    spaces_tx
        .send(event("MODIFIED", space("team", "nap", "APP_STARTING"), "2"))
        .unwrap();
    slices_tx
        .send(event(
            "ADDED",
            slice("team", "nap", &["127.0.0.1"], app_port),
            "3",
        ))
        .unwrap();
    let mut answer = (0, String::new());
    for _ in 0..50 {
        answer = get(port, "team-nap.spaces.test").await;
        if answer.0 == 200 {
            break;
        }
    }
    assert_eq!(
        answer,
        (200, "hello from the app".into()),
        "served once awake"
    );
    api.verify().await;
}

#[test]
fn bad_proxy_settings_exit_64_before_anything_starts() {
    let bin = env!("CARGO_BIN_EXE_spaceport-controller");
    for (flag, value, words) in [
        ("--namespace", "Team_A", "invalid --namespace"),
        ("--hub-url", "ftp://hub.example", "invalid --hub-url"),
        ("--domain", "spaces example", "domain"),
    ] {
        let out = std::process::Command::new(bin)
            .args(["proxy", flag, value, "--listen", "127.0.0.1:0"])
            .env_remove("SPACEPORT_NAMESPACE")
            .env_remove("SPACEPORT_HUB_URL")
            .env_remove("SPACEPORT_DOMAIN")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{flag} {value}: {stderr}");
        assert!(stderr.contains(words), "{flag} {value}: {stderr}");
    }
}

/// A child process killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An API server on loopback that lists one running Space and its slice,
/// and holds every watch open with no events.
async fn fake_api_server(app_port: u16) -> u16 {
    use axum::extract::RawQuery;
    let answer = |list: Value| {
        move |RawQuery(q): RawQuery| {
            let list = list.clone();
            async move {
                if q.unwrap_or_default().contains("watch=true") {
                    let forever = futures_util::stream::pending::<Result<Bytes, Infallible>>();
                    axum::body::Body::from_stream(forever).into_response()
                } else {
                    axum::Json(list).into_response()
                }
            }
        }
    };
    use axum::response::IntoResponse;
    let spaces = json!({"apiVersion": "spaceport.dev/v1alpha1", "kind": "SpaceList",
        "metadata": {"resourceVersion": "1"}, "items": [space("team", "demo", "RUNNING")]});
    let slices = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
        "metadata": {"resourceVersion": "1"},
        "items": [slice("team", "demo", &["127.0.0.1"], app_port)]});
    let api = axum::Router::new()
        .route(SPACES, axum::routing::get(answer(spaces)))
        .route(SLICES, axum::routing::get(answer(slices)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, api).await });
    port
}

async fn get_path(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://127.0.0.1:{port}{path}"))
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn the_binary_serves_spaces_health_and_metrics_from_the_cluster() {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello from the app" }));
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(upstream, app).await });
    let api_port = fake_api_server(app_port).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{api_port}'}}}}]\n\
             users: [{{name: nobody, user: {{}}}}]\n\
             contexts: [{{name: test, context: {{cluster: fake, user: nobody}}}}]\n"
        ),
    )
    .unwrap();
    let (listen, metrics) = (free_port(), free_port());
    let _proxy = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_spaceport-controller"))
            .arg("proxy")
            .env("KUBECONFIG", &kubeconfig)
            .env("SPACEPORT_LISTEN", format!("127.0.0.1:{listen}"))
            .env("SPACEPORT_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
            .env("SPACEPORT_DOMAIN", "spaces.test")
            .env_remove("SPACEPORT_NAMESPACE")
            .env_remove("SPACEPORT_HUB_URL")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut answer = None;
    for _ in 0..100 {
        answer = get_path(listen, "team-demo.spaces.test", "/").await;
        if answer.as_ref().is_some_and(|a| a.0 == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some((200, "hello from the app".into())));
    let health = get_path(metrics, "localhost", "/healthz").await;
    assert_eq!(health.map(|h| h.0), Some(200));
    let (status, text) = get_path(metrics, "localhost", "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("spaceport_"), "{text}");
    let metrics_on_the_public_port = get_path(listen, "localhost", "/metrics").await.unwrap();
    assert_eq!(metrics_on_the_public_port.0, 404);
}
