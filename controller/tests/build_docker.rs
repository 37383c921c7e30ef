//! The cluster's image builder on the real Docker engine, with real git:
//! a local repository holding a tiny docker Space (FROM scratch, so no
//! image is pulled) is fetched at a commit, planned, built, tagged for the
//! registry and, where asked, pushed. With CI=true a missing engine fails
//! the test; otherwise the test is skipped, saying why. Every image made
//! is removed.

mod support;

use spaceport_controller::build::docker::{DockerBuilder, DockerSettings};
use spaceport_controller::build::{BuildError, BuildJob, Built, GitLocation, ImageBuilder};
use spaceport_runtime::build::LogBook;
use spaceport_runtime::config::Sdk;
use spaceport_runtime::engine::DockerEngine;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use support::git;

const README: &str = "---\ntitle: Hello\nsdk: docker\napp_port: 8080\n---\n\n# Hello\n";
const DOCKERFILE: &str =
    "FROM scratch\nARG GREETING\nCOPY index.html /www/index.html\nLABEL greeting=$GREETING\n";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

async fn docker() -> Option<Arc<DockerEngine>> {
    match DockerEngine::connect().await {
        Ok(e) => Some(Arc::new(e)),
        Err(e) if ci() => panic!("CI=true and no Docker engine answers: {e}"),
        Err(e) => {
            eprintln!("skipped: no Docker engine answers: {e}");
            None
        }
    }
}

/// A repository with the given README and the tiny Dockerfile; returns
/// its file URL and the commit.
fn repo(dir: &Path, readme: &str) -> (String, String) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), readme).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>hello</h1>\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "hello"]);
    let commit = git(dir, &["rev-parse", "HEAD"]);
    (format!("file://{}", dir.display()), commit)
}

fn job(name: &str, url: &str, commit: &str) -> BuildJob {
    BuildJob {
        namespace: "team".into(),
        name: name.into(),
        commit: commit.into(),
        source: GitLocation {
            url: url.into(),
            credentials: None,
        },
        config: None,
        secrets: BTreeMap::new(),
        variables: BTreeMap::from([("GREETING".into(), "hi there".into())]),
        no_cache: false,
    }
}

async fn builder(engine: &Arc<DockerEngine>, registry: &str, push: bool) -> DockerBuilder {
    let settings = DockerSettings {
        registry: Some(registry.into()),
        push,
        ..DockerSettings::default()
    };
    DockerBuilder::new(engine.clone(), settings).unwrap()
}

async fn remove(engine: &DockerEngine, image: &str) {
    let options = bollard::query_parameters::RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    let _ = engine
        .client()
        .remove_image(image, Some(options), None)
        .await;
}

#[tokio::test]
async fn a_docker_space_at_a_commit_builds_to_a_tagged_image_with_its_labels_and_log() {
    let Some(engine) = docker().await else { return };
    let src = tempfile::tempdir().unwrap();
    let (url, commit) = repo(src.path(), README);
    let b = builder(&engine, "Registry.Test:5000/Spaces", false).await;
    let log = Arc::new(LogBook::new(1000));
    let built: Built = b
        .build(job("hello-build", &url, &commit), log.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", log.lines()));
    let want = format!(
        "registry.test:5000/spaces/team-hello-build:{}",
        &commit[..12]
    );
    assert_eq!(built.image, want);
    assert_eq!(built.commit, commit);
    assert_eq!(built.config.sdk, Sdk::Docker);
    let inspect = engine.client().inspect_image(&want).await;
    remove(&engine, &want).await;
    let inspect = inspect.expect("the image exists under its registry name");
    let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get("dev.spaceport.space").map(String::as_str),
        Some("team/hello-build")
    );
    assert_eq!(
        labels.get("greeting").map(String::as_str),
        Some("hi there"),
        "variables are build args"
    );
    // The runtime's own tag is dropped; only the registry name remains.
    let local = format!("spaceport/team-hello-build:{commit}");
    assert!(engine.client().inspect_image(&local).await.is_err());
    let lines = log.lines();
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    assert!(
        lines[0].contains(&format!("Commit SHA: {commit}")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("Build Queued")).count(),
        1
    );
    assert!(has(&format!("fetching {commit} from {url}")), "{lines:#?}");
    assert!(has("COPY index.html"), "{lines:#?}");
    assert!(has("Build Succeeded"), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), &format!("===== Image: {want} ====="));
}

#[tokio::test]
async fn an_invalid_readme_is_a_config_error_with_its_line() {
    let Some(engine) = docker().await else { return };
    let src = tempfile::tempdir().unwrap();
    let readme = "---\ntitle: Hello\nsdk: dokcer\n---\n";
    let (url, commit) = repo(src.path(), readme);
    let b = builder(&engine, "registry.test/spaces", false).await;
    let log = Arc::new(LogBook::new(100));
    let err = b
        .build(job("bad-readme", &url, &commit), log.clone())
        .await
        .unwrap_err();
    let BuildError::Config(message) = &err else {
        panic!("expected a config error, got {err:?}");
    };
    assert!(message.starts_with("README.md:3:"), "{message}");
    assert!(message.contains("dokcer"), "{message}");
    assert!(log.lines().last().unwrap().contains("Build Failed"));
}

#[tokio::test]
async fn a_commit_missing_from_the_repository_fails_clearly() {
    let Some(engine) = docker().await else { return };
    let src = tempfile::tempdir().unwrap();
    let (url, _) = repo(src.path(), README);
    let b = builder(&engine, "registry.test/spaces", false).await;
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = b
        .build(job("gone", &url, missing), Arc::new(LogBook::new(100)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::Failed(format!(
            "the commit {missing} is not in {url} (was it force-pushed away?)"
        ))
    );
    let err = b
        .build(
            job("gone", "ext::sh -c id", missing),
            Arc::new(LogBook::new(100)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Failed(m) if m.contains("is not a git URL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_push_to_an_unreachable_registry_fails_naming_it() {
    let Some(engine) = docker().await else { return };
    let src = tempfile::tempdir().unwrap();
    let (url, commit) = repo(src.path(), README);
    let b = builder(&engine, "127.0.0.1:1/spaces", true).await;
    let log = Arc::new(LogBook::new(1000));
    let result = b.build(job("unpushed", &url, &commit), log.clone()).await;
    let image = format!("127.0.0.1:1/spaces/team-unpushed:{}", &commit[..12]);
    remove(&engine, &image).await;
    let err = result.unwrap_err();
    let BuildError::Failed(message) = &err else {
        panic!("expected a failed build, got {err:?}");
    };
    assert!(message.contains("to the registry 127.0.0.1:1"), "{message}");
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains(&format!("pushing {image} to 127.0.0.1:1"))),
        "{:#?}",
        log.lines()
    );
}

#[tokio::test]
async fn endpoints_and_registries_are_checked_when_the_builder_is_made() {
    let Some(engine) = docker().await else { return };
    let connect = |endpoint: &str, tls: Option<&Path>| DockerSettings {
        endpoint: Some(endpoint.into()),
        tls_dir: tls.map(Path::to_owned),
        ..DockerSettings::default()
    };
    let err = |r: Result<DockerBuilder, String>| r.map(|_| ()).unwrap_err();
    let e = err(DockerBuilder::connect(connect("ftp://docker:2375", None)).await);
    assert!(
        e.contains("'ftp://docker:2375' is not a Docker API endpoint"),
        "{e}"
    );
    let e = err(DockerBuilder::connect(connect("tcp://127.0.0.1:1", None)).await);
    assert!(
        e.starts_with("failed to reach the container engine: tcp://127.0.0.1:1: "),
        "{e}"
    );
    let no_certs = tempfile::tempdir().unwrap();
    let e = err(DockerBuilder::connect(connect("tcp://127.0.0.1:1", Some(no_certs.path()))).await);
    assert!(
        e.starts_with("failed to reach the container engine: tcp://127.0.0.1:1: "),
        "{e}"
    );
    let socket = "/var/run/docker.sock";
    if Path::new(socket).exists() {
        let endpoint = format!("unix://{socket}");
        DockerBuilder::connect(connect(&endpoint, None))
            .await
            .expect("the local socket is an endpoint");
    }
    let settings = DockerSettings {
        registry: Some("https://registry.example/spaces".into()),
        ..DockerSettings::default()
    };
    let e = err(DockerBuilder::new(engine.clone(), settings));
    assert!(e.contains("has a scheme"), "{e}");
    let settings = DockerSettings {
        registry: Some("registry.example/spaces".into()),
        registry_auth_file: Some(no_certs.path().join("config.json")),
        ..DockerSettings::default()
    };
    let e = err(DockerBuilder::new(engine, settings));
    assert!(e.contains("failed to read the registry auth file"), "{e}");
}

const BUSYBOX: &str = "/bin/busybox";

#[tokio::test]
async fn build_secrets_reach_a_mounting_step_and_a_wrong_one_fails_the_build() {
    let Some(engine) = docker().await else { return };
    if !Path::new(BUSYBOX).exists() {
        assert!(
            !ci(),
            "CI=true and {BUSYBOX} (Debian's busybox-static) is missing"
        );
        eprintln!("skipped: {BUSYBOX} (Debian's busybox-static) is missing");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let (url, _) = repo(src.path(), README);
    std::fs::copy(BUSYBOX, src.path().join("busybox")).unwrap();
    // The step succeeds only when the mounted secret holds the value.
    // A nonce keeps the step out of BuildKit's cache of earlier runs.
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN --mount=type=secret,id=TOKEN [\"/bin/busybox\", \"sh\", \"-c\", \"test \\\"$(/bin/busybox cat /run/secrets/TOKEN)\\\" = tok-0123456789 # {nonce}\"]\n"
    );
    std::fs::write(src.path().join("Dockerfile"), dockerfile).unwrap();
    git(src.path(), &["add", "."]);
    git(src.path(), &["commit", "-q", "-m", "secret step"]);
    let commit = git(src.path(), &["rev-parse", "HEAD"]);
    let b = builder(&engine, "registry.test/spaces", false).await;
    // The wrong value first: BuildKit caches a step whatever the secret
    // held, so a success first would let the failing build hit the cache.
    let mut wrong = job("secret-step", &url, &commit);
    wrong.secrets = BTreeMap::from([("TOKEN".into(), "tok-wrong".into())]);
    let image = format!("registry.test/spaces/team-secret-step:{}", &commit[..12]);
    let result = b.build(wrong, Arc::new(LogBook::new(1000))).await;
    remove(&engine, &image).await;
    assert!(matches!(result, Err(BuildError::Failed(_))), "{result:?}");
    let mut with = job("secret-step", &url, &commit);
    with.secrets = BTreeMap::from([("TOKEN".into(), "tok-0123456789".into())]);
    let log = Arc::new(LogBook::new(1000));
    let built = b.build(with, log.clone()).await;
    remove(&engine, &image).await;
    built.unwrap_or_else(|e| panic!("{e}\n{:#?}", log.lines()));
    assert!(!log.lines().iter().any(|l| l.contains("tok-0123456789")));
}

#[tokio::test]
async fn a_static_space_builds_to_an_image_that_serves_its_files() {
    let Some(engine) = docker().await else { return };
    let src = tempfile::tempdir().unwrap();
    let readme = "---\ntitle: Site\nsdk: static\napp_file: index.html\n---\n";
    let (url, commit) = repo(src.path(), readme);
    let settings = DockerSettings {
        registry: Some("registry.test/spaces".into()),
        push: false,
        // Any image will do under the files; scratch needs no pull.
        static_server_image: "scratch".into(),
        ..DockerSettings::default()
    };
    let b = DockerBuilder::new(engine.clone(), settings).unwrap();
    let log = Arc::new(LogBook::new(1000));
    let built = b
        .build(job("site", &url, &commit), log.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", log.lines()));
    assert_eq!(built.config.sdk, Sdk::Static);
    let inspect = engine.client().inspect_image(&built.image).await;
    remove(&engine, &built.image).await;
    let config = inspect.expect("the image exists").config.unwrap();
    assert_eq!(
        config.cmd.unwrap(),
        [
            "spaceport",
            "serve-static",
            "/srv/space",
            "--index",
            "index.html",
            "--listen",
            "0.0.0.0:8080"
        ]
    );
    assert_eq!(config.user.as_deref(), Some("1000"));
    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("COPY --chown=1000:1000 ./ /srv/space/")),
        "{lines:#?}"
    );
}
