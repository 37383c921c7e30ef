//! End-to-end tests against the real Docker engine: build and run Spaces
//! the way spaceport does (plan -> build -> run), and check what a visitor
//! and an owner see.
//!
//! Needs a Docker engine, and for gradio/streamlit the local Python base
//! image (runtime/scripts/base-image.sh) and PyPI. With CI=true a missing
//! prerequisite fails the test; otherwise the test is skipped, saying why.
//! Builds share two cores, so the heavy tests take turns and every wait is
//! generous. Everything created is labelled and removed at the end (the
//! base image is kept).

use spaceport_runtime::build::{BuildOutcome, BuildRequest, BuildSettings, Builder};
use spaceport_runtime::config::{StorageTier, parse_readme};
use spaceport_runtime::engine::{ContainerEngine, DockerEngine};
use spaceport_runtime::gpu::GpuAllocator;
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::{BuildPlan, Plan, PlanSettings, SpaceContext, SpaceId, plan};
use spaceport_runtime::run::{ContainerSettings, Deployment, RunSettings, Runner, SpaceStatus};
use spaceport_runtime::stage::Stage;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BASE_IMAGE: &str = "spaceport/python-base:bookworm";
const BUSYBOX: &str = "/bin/busybox";

/// One heavy test at a time: two shared cores.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI=true, skips (returning None) otherwise.
fn missing(what: &str) -> Option<std::convert::Infallible> {
    if ci() {
        panic!("CI=true and {what}");
    }
    eprintln!("skipped: {what}");
    None
}

async fn docker() -> Option<Arc<DockerEngine>> {
    match DockerEngine::connect().await {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            missing(&format!("no Docker engine answers: {e}"))?;
            None
        }
    }
}

fn base_image() -> String {
    std::env::var("SPACEPORT_TEST_BASE_IMAGE").unwrap_or_else(|_| BASE_IMAGE.into())
}

async fn python_ready(engine: &DockerEngine) -> bool {
    let tag = base_image();
    if engine.image_exists(&tag).await.unwrap_or(false) {
        return true;
    }
    missing(&format!(
        "the base image {tag} is missing (build it with runtime/scripts/base-image.sh)"
    ));
    false
}

fn busybox_ready() -> bool {
    if Path::new(BUSYBOX).exists() {
        return true;
    }
    missing(&format!(
        "{BUSYBOX} (a static busybox, Debian's busybox-static) is missing"
    ));
    false
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A docker-SDK Space FROM scratch: a static busybox serving a page.
fn static_space(dockerfile_extra: &str, cmd: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(BUSYBOX, dir.path().join("busybox")).unwrap();
    write(
        dir.path(),
        "README.md",
        "---\ntitle: Static\nsdk: docker\napp_port: 8080\n---\n",
    );
    write(dir.path(), "index.html", "<h1>hello from scratch</h1>\n");
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n{dockerfile_extra}EXPOSE 8080\nCMD {cmd}\n"
        ),
    );
    dir
}

const HTTPD: &str = r#"["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#;

fn copy_example(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn plan_folder(dir: &Path, space: &SpaceId, secrets: &[&str]) -> Plan {
    plan_with_storage(dir, space, secrets, None)
}

fn plan_with_storage(
    dir: &Path,
    space: &SpaceId,
    secrets: &[&str],
    storage: Option<StorageTier>,
) -> Plan {
    let folder = spaceport_runtime::folder::read(dir).unwrap();
    let parsed = parse_readme(&folder.readme);
    let config = parsed.config.expect("valid README");
    let mut context = SpaceContext::new(space.clone());
    context.storage = storage;
    context.secret_names = secrets
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<BTreeSet<_>>();
    let settings = PlanSettings {
        python_base_image: base_image(),
        ..PlanSettings::default()
    };
    plan(
        &config,
        &folder.files,
        &context,
        &FlavorCatalog::builtin(),
        &settings,
    )
    .unwrap()
}

struct Harness {
    engine: Arc<DockerEngine>,
    builder: Builder<DockerEngine>,
    runner: Runner<DockerEngine>,
    space: SpaceId,
    tags: Mutex<Vec<String>>,
}

impl Harness {
    async fn new(engine: Arc<DockerEngine>, space: &str) -> Self {
        let h = Harness {
            builder: Builder::new(engine.clone(), BuildSettings::default()),
            runner: runner(&engine),
            engine,
            space: SpaceId::parse(space).unwrap(),
            tags: Mutex::new(Vec::new()),
        };
        h.remove_containers().await;
        h
    }

    async fn build(
        &self,
        dir: &Path,
        plan: &Plan,
        commit: &str,
        secrets: BTreeMap<String, String>,
    ) -> (BuildOutcome, Vec<String>) {
        let BuildPlan::Image(image) = &plan.build else {
            panic!("not an image build")
        };
        self.runner.building(&self.space);
        let handle = self.builder.start(BuildRequest {
            space: self.space.clone(),
            commit: commit.into(),
            folder: dir.to_owned(),
            image: image.clone(),
            secrets,
            no_cache: false,
        });
        self.tags.lock().unwrap().push(handle.tag.clone());
        let outcome = tokio::time::timeout(Duration::from_secs(1500), handle.wait())
            .await
            .expect("the build did not end within 25 minutes");
        if let BuildOutcome::Failed { reason } = &outcome {
            self.runner.build_failed(&self.space, reason);
        }
        (outcome, handle.log.lines())
    }

    async fn deploy(&self, plan: &Plan, commit: &str, tag: &str) {
        self.runner
            .deploy(Deployment {
                space: self.space.clone(),
                commit: commit.into(),
                image: tag.into(),
                run: plan.run.clone(),
                secrets: BTreeMap::new(),
                host_port: None,
            })
            .await
            .unwrap();
    }

    async fn remove_containers(&self) {
        let label = [(
            spaceport_runtime::build::SPACE_LABEL.to_owned(),
            self.space.to_string(),
        )];
        for c in self
            .engine
            .list_containers(&label)
            .await
            .unwrap_or_default()
        {
            let _ = self.engine.remove_container(&c.id).await;
        }
    }

    async fn clean(&self) {
        self.remove_containers().await;
        let tags = self.tags.lock().unwrap().clone();
        for t in tags {
            let _ = self.engine.remove_image(&t).await;
        }
    }
}

fn runner(engine: &Arc<DockerEngine>) -> Runner<DockerEngine> {
    Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
        RunSettings::default(),
    )
}

async fn reach(runner: &Runner<DockerEngine>, space: &SpaceId, want: &[Stage]) -> SpaceStatus {
    let mut rx = runner.watch(space).expect("a known Space");
    let found = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let s = rx.borrow_and_update().clone();
            if want.contains(&s.stage) {
                return s;
            }
            if rx.changed().await.is_err() {
                return s;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("never reached {want:?}: {:?}", runner.status(space)))
}

/// GET on loopback: the status code and body.
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

fn docker_cli(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_docker_space_built_from_scratch_with_a_static_binary_runs_and_answers() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine, "e2e/static").await;
    let dir = static_space("", HTTPD);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "s1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    assert!(log[0].starts_with("===== Build Queued at ") && log[0].contains("Commit SHA: s1"));
    assert!(log.iter().any(|l| l.contains("COPY busybox")), "{log:?}");
    h.deploy(&plan, "s1", &tag).await;
    let s = reach(&h.runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    let (code, body) = get(s.host_port.unwrap(), "/").await;
    assert_eq!(code, 200);
    assert!(body.contains("hello from scratch"));

    // The container is locked down as the issue asks.
    let id = s.container_id.unwrap();
    let inspect: serde_json::Value =
        serde_json::from_slice(&docker_cli(&["inspect", &id])).unwrap();
    let hc = &inspect[0]["HostConfig"];
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["PidsLimit"], 4096);
    assert!(hc["Memory"].as_i64().unwrap() > 0 && hc["NanoCpus"].as_i64().unwrap() > 0);
    assert_eq!(hc["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(
        inspect[0]["Config"]["Labels"]["dev.spaceport.managed"],
        "true"
    );
    h.clean().await;
}

#[tokio::test]
async fn a_space_whose_app_crashes_reaches_runtime_error_with_its_log_tail() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine, "e2e/crash").await;
    let cmd = r#"["/bin/busybox", "sh", "-c", "echo loading model; echo 'fatal: weights not found' >&2; exit 3"]"#;
    let dir = static_space("", cmd);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "c1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    h.deploy(&plan, "c1", &tag).await;
    let s = reach(&h.runner, &h.space, &[Stage::RuntimeError, Stage::Running]).await;
    assert_eq!(s.stage, Stage::RuntimeError);
    let message = s.message.unwrap();
    assert!(message.contains("exited with code 3"), "{message}");
    assert!(message.contains("fatal: weights not found"), "{message}");
    h.clean().await;
}

#[tokio::test]
async fn a_build_secret_is_usable_in_its_step_and_absent_from_history_and_layers() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine, "e2e/secret").await;
    let value = "sk-e2e-0123456789-very-secret";
    let step = "RUN --mount=type=secret,id=TOKEN [\"/bin/busybox\", \"sh\", \"-c\", \"test -s /run/secrets/TOKEN && /bin/busybox wc -c < /run/secrets/TOKEN > /www/secret-length\"]\n";
    let dir = static_space(step, HTTPD);
    let plan = plan_folder(dir.path(), &h.space, &["TOKEN"]);
    let secrets = BTreeMap::from([("TOKEN".to_owned(), value.to_owned())]);
    let (outcome, log) = h.build(dir.path(), &plan, "k1", secrets).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    assert!(!log.join("\n").contains(value));
    // The step read it: the length it wrote is the secret's.
    h.deploy(&plan, "k1", &tag).await;
    let s = reach(&h.runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    let (_, body) = get(s.host_port.unwrap(), "/secret-length").await;
    assert!(
        body.trim_end().ends_with(&value.len().to_string()),
        "{body}"
    );
    // And it is nowhere in the image.
    let history = docker_cli(&["history", "--no-trunc", &tag]);
    assert!(!contains(&history, value.as_bytes()));
    let inspect = docker_cli(&["image", "inspect", &tag]);
    assert!(!contains(&inspect, value.as_bytes()));
    let saved = docker_cli(&["save", &tag]);
    assert!(saved.len() > 100_000, "the saved image holds the layers");
    assert!(
        !contains(&saved, value.as_bytes()),
        "the secret is in a layer"
    );
    h.clean().await;
}

#[tokio::test]
async fn a_restarted_runtime_adopts_the_running_space_and_it_keeps_serving() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine.clone(), "e2e/adopt").await;
    let dir = static_space("", HTTPD);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "a1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    h.deploy(&plan, "a1", &tag).await;
    let before = reach(&h.runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(before.stage, Stage::Running);

    // A new runtime process: nothing in memory, only the engine's containers.
    let restarted = runner(&engine);
    let adopted = restarted.adopt().await.unwrap();
    assert!(adopted.contains(&h.space), "{adopted:?}");
    let after = reach(&restarted, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(after.stage, Stage::Running);
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.host_port, before.host_port);
    let (code, _) = get(after.host_port.unwrap(), "/").await;
    assert_eq!(code, 200);
    h.clean().await;
}

#[tokio::test]
async fn a_bad_requirements_txt_is_a_build_error_showing_pips_message() {
    let Some(engine) = docker().await else { return };
    if !python_ready(&engine).await {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine, "e2e/badreq").await;
    let dir = copy_example("gradio-hello");
    write(
        dir.path(),
        "requirements.txt",
        "spaceport-no-such-package-e2e==0.0.1\n",
    );
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "b1", BTreeMap::new()).await;
    assert!(
        matches!(outcome, BuildOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let log = log.join("\n");
    assert!(
        log.contains("No matching distribution found for spaceport-no-such-package-e2e"),
        "{log}"
    );
    assert_eq!(h.runner.status(&h.space).unwrap().stage, Stage::BuildError);
    h.clean().await;
}

async fn python_space_runs(example: &str, space: &str, page_marker: &str) {
    let Some(engine) = docker().await else { return };
    if !python_ready(&engine).await {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine, space).await;
    let dir = copy_example(example);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "p1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    h.deploy(&plan, "p1", &tag).await;
    let s = reach(&h.runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    let (code, body) = get(s.host_port.unwrap(), "/").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(page_marker), "{body}");
    let inspect: serde_json::Value = serde_json::from_slice(&docker_cli(&[
        "inspect",
        s.container_id.as_deref().unwrap(),
    ]))
    .unwrap();
    assert_eq!(inspect[0]["Config"]["User"], "1000:1000");
    h.runner.stop(&h.space).await.unwrap();

    // The same image under a read-only root: the generated images keep
    // everything they write in HOME, /tmp or the mounts.
    let read_only = runner_with(
        &h.engine,
        ContainerSettings {
            read_only_root: true,
            ..ContainerSettings::default()
        },
    );
    read_only
        .deploy(Deployment {
            space: h.space.clone(),
            commit: "p1".into(),
            image: tag.clone(),
            run: plan.run.clone(),
            secrets: BTreeMap::new(),
            host_port: None,
        })
        .await
        .unwrap();
    let s = reach(&read_only, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    let (code, body) = get(s.host_port.unwrap(), "/").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(page_marker), "{body}");
    let inspect: serde_json::Value = serde_json::from_slice(&docker_cli(&[
        "inspect",
        s.container_id.as_deref().unwrap(),
    ]))
    .unwrap();
    assert_eq!(inspect[0]["HostConfig"]["ReadonlyRootfs"], true);
    read_only.stop(&h.space).await.unwrap();
    h.clean().await;
}

#[tokio::test]
async fn a_real_gradio_space_from_pypi_reaches_running_and_answers_with_a_writable_or_read_only_root()
 {
    python_space_runs("gradio-hello", "e2e/gradio", "gradio").await;
}

#[tokio::test]
async fn a_real_streamlit_space_from_pypi_reaches_running_and_answers_with_a_writable_or_read_only_root()
 {
    python_space_runs("streamlit-hello", "e2e/streamlit", "Streamlit").await;
}

/// A loopback port free now, for a fixed host port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `port` every 5 ms until its app answers over HTTP.
async fn first_answer(port: u16) {
    let wait = async {
        while !spaceport_runtime::run::health::probe("127.0.0.1", port, "/").await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("no HTTP answer within 60 s");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn a_sleeping_space_wakes_in_the_same_container_on_the_same_port() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine.clone(), "e2e/sleep").await;
    let dir = static_space("", HTTPD);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "w1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    // busybox httpd as PID 1 ignores SIGTERM: a short grace keeps stops short.
    let runner = Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
        RunSettings {
            stop_grace_secs: 1,
            ..RunSettings::default()
        },
    );
    let port = free_port();
    runner
        .deploy(Deployment {
            space: h.space.clone(),
            commit: "w1".into(),
            image: tag,
            run: plan.run.clone(),
            secrets: BTreeMap::new(),
            host_port: Some(port),
        })
        .await
        .unwrap();
    let s = reach(&runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    assert_eq!(s.host_port, Some(port));
    let id = s.container_id.unwrap();
    assert_eq!(get(port, "/").await.0, 200);

    runner.sleep(&h.space).await.unwrap();
    assert!(runner.is_sleeping(&h.space));
    assert_eq!(runner.status(&h.space).unwrap().stage, Stage::Stopped);
    let info = engine.inspect_container(&id).await.unwrap().expect("kept");
    assert!(!info.running);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );

    runner.wake(&h.space).await.unwrap();
    let s = runner.status(&h.space).unwrap();
    assert_eq!(s.stage, Stage::Running);
    assert_eq!(s.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(s.host_port, Some(port));
    let (code, body) = get(port, "/").await;
    assert_eq!(code, 200);
    assert!(body.contains("hello from scratch"));

    // Wake against a bare start of the same container, to its first answer.
    let (mut bare, mut wake) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        runner.sleep(&h.space).await.unwrap();
        let t = std::time::Instant::now();
        engine.start_container(&id).await.unwrap();
        first_answer(port).await;
        bare.push(t.elapsed());
        engine.stop_container(&id, 1).await.unwrap();

        let t = std::time::Instant::now();
        runner.wake(&h.space).await.unwrap();
        wake.push(t.elapsed());
        assert_eq!(
            runner.status(&h.space).unwrap().container_id.as_deref(),
            Some(id.as_str())
        );
    }
    let (bare, wake) = (median(bare), median(wake));
    println!(
        "wake to first answer: median {:.1} ms; bare start: median {:.1} ms; difference {:+.1} ms",
        wake.as_secs_f64() * 1e3,
        bare.as_secs_f64() * 1e3,
        (wake.as_secs_f64() - bare.as_secs_f64()) * 1e3
    );

    runner.stop(&h.space).await.unwrap();
    assert!(engine.inspect_container(&id).await.unwrap().is_none());
    h.clean().await;
}

/// A runner with these container settings.
fn runner_with(engine: &Arc<DockerEngine>, container: ContainerSettings) -> Runner<DockerEngine> {
    Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
        RunSettings {
            container,
            stop_grace_secs: 1,
            ..RunSettings::default()
        },
    )
}

/// A busybox CMD in exec form: `sh -c script`, then the page server.
fn shell_then_httpd(script: &str) -> String {
    let line = format!("{script}; exec /bin/busybox httpd -f -p 8080 -h /www");
    serde_json::to_string(&["/bin/busybox", "sh", "-c", &line]).unwrap()
}

/// Deploys and waits for RUNNING, then for a run log line holding `marker`;
/// returns the log.
async fn run_until_logged(
    runner: &Runner<DockerEngine>,
    h: &Harness,
    plan: &Plan,
    commit: &str,
    tag: &str,
    marker: &str,
) -> (SpaceStatus, String) {
    runner
        .deploy(Deployment {
            space: h.space.clone(),
            commit: commit.into(),
            image: tag.into(),
            run: plan.run.clone(),
            secrets: BTreeMap::new(),
            host_port: None,
        })
        .await
        .unwrap();
    let s = reach(runner, &h.space, &[Stage::Running, Stage::RuntimeError]).await;
    assert_eq!(s.stage, Stage::Running, "{:?}", s.message);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = runner.logs(&h.space).unwrap().lines().join("\n");
        if log.contains(marker) {
            return (s, log);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no '{marker}' in the run log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_docker_space_whose_image_names_no_user_runs_as_uid_1000_unless_the_operator_allows_it() {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine.clone(), "e2e/uid").await;
    let cmd = shell_then_httpd("echo \"uid=$(/bin/busybox id -u) home=$HOME end\"");
    let dir = static_space("", &cmd);
    let plan = plan_folder(dir.path(), &h.space, &[]);
    let (outcome, log) = h.build(dir.path(), &plan, "u1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };

    let runner = runner_with(&engine, ContainerSettings::default());
    let (s, log) = run_until_logged(&runner, &h, &plan, "u1", &tag, " end").await;
    assert!(
        log.contains("uid=1000 home=/tmp end"),
        "uid 1000, with a HOME it can write:\n{log}"
    );
    let inspect: serde_json::Value = serde_json::from_slice(&docker_cli(&[
        "inspect",
        s.container_id.as_deref().unwrap(),
    ]))
    .unwrap();
    assert_eq!(inspect[0]["Config"]["User"], "1000:1000");
    assert_eq!(get(s.host_port.unwrap(), "/").await.0, 200);
    runner.stop(&h.space).await.unwrap();

    // The operator lets images choose: this one says nothing, so root.
    let runner = runner_with(
        &engine,
        ContainerSettings {
            image_user: true,
            ..ContainerSettings::default()
        },
    );
    let (s, log) = run_until_logged(&runner, &h, &plan, "u1", &tag, " end").await;
    assert!(log.contains("uid=0 "), "the image's own user:\n{log}");
    assert_eq!(get(s.host_port.unwrap(), "/").await.0, 200);
    runner.stop(&h.space).await.unwrap();
    h.clean().await;
}

/// Runs a busybox Space under a read-only root whose image sets up HOME
/// with `home_setup` (Dockerfile lines), and checks what it may write.
async fn read_only_root_probe(space: &str, home_setup: &str) {
    let Some(engine) = docker().await else { return };
    if !busybox_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let h = Harness::new(engine.clone(), space).await;
    // HOME holds a file of the image, which must stay readable there.
    let extra = format!(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /home/user && echo kept > /home/user/from-image && /bin/busybox chown -R 1000:1000 /home/user\"]\n{home_setup}"
    );
    let probe = "for d in / /tmp $HOME /data; do if /bin/busybox touch $d/probe 2>/dev/null; then echo \"writable:$d\"; else echo \"refused:$d\"; fi; done; echo \"image-file:$(/bin/busybox cat $HOME/from-image)\"; echo probed";
    let dir = static_space(&extra, &shell_then_httpd(probe));
    let plan = plan_with_storage(dir.path(), &h.space, &[], Some(StorageTier::Small));
    let (outcome, log) = h.build(dir.path(), &plan, "r1", BTreeMap::new()).await;
    let BuildOutcome::Built { tag } = outcome else {
        panic!("{outcome:?}\n{}", log.join("\n"))
    };
    let volumes = tempfile::tempdir().unwrap();
    let data = volumes.path().join("data").join(h.space.host_label());
    std::fs::create_dir_all(&data).unwrap();
    // The Space runs as uid 1000; the test may run as another user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let runner = runner_with(
        &engine,
        ContainerSettings {
            read_only_root: true,
            volume_root: Some(volumes.path().to_owned()),
            ..ContainerSettings::default()
        },
    );
    let (s, log) = run_until_logged(&runner, &h, &plan, "r1", &tag, "probed").await;
    for line in [
        "refused:/\n",
        "writable:/tmp",
        "writable:/home/user",
        "writable:/data",
        "image-file:kept",
    ] {
        assert!(log.contains(line), "no '{line}' in:\n{log}");
    }
    let inspect: serde_json::Value = serde_json::from_slice(&docker_cli(&[
        "inspect",
        s.container_id.as_deref().unwrap(),
    ]))
    .unwrap();
    assert_eq!(inspect[0]["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(get(s.host_port.unwrap(), "/").await.0, 200);
    runner.stop(&h.space).await.unwrap();
    h.clean().await;
}

#[tokio::test]
async fn with_a_read_only_root_a_space_writes_to_tmp_home_and_data_only() {
    read_only_root_probe("e2e/rofs", "ENV HOME=/home/user\n").await;
}

#[tokio::test]
async fn with_a_read_only_root_a_home_that_only_passwd_names_stays_writable() {
    // As many Space Dockerfiles do: a user, no ENV HOME.
    let passwd = "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo user:x:1000:1000::/home/user:/bin/sh > /etc/passwd\"]\nUSER user\n";
    read_only_root_probe("e2e/rofs-passwd", passwd).await;
}
