use super::*;
use crate::engine::{EngineCall, FakeEngine};
use crate::gpu::GpuInfo;
use crate::plan::{HealthCheck, Resources, ResponseHeaders};
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP server answering every request with `status`.
async fn app(status: u16) -> (u16, Arc<AtomicU16>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let status = Arc::new(AtomicU16::new(status));
    let s = status.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let code = s.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            });
        }
    });
    (port, status)
}

fn space() -> SpaceId {
    SpaceId::parse("alice/demo").unwrap()
}

fn run_spec(gpus: u32) -> RunSpec {
    RunSpec {
        port: Some(7860),
        user: Some(1000),
        env: BTreeMap::from([("SPACE_ID".into(), "alice/demo".into())]),
        secret_env: vec!["HF_TOKEN".into()],
        resources: Resources {
            flavor: "cpu-basic".into(),
            cpu_millis: 2000,
            memory_bytes: 16 << 30,
            gpus,
            gpu_model: None,
            pids_limit: 4096,
        },
        volumes: Vec::new(),
        health: Some(HealthCheck {
            port: 7860,
            path: "/".into(),
        }),
        startup_timeout_secs: 600,
        headers: ResponseHeaders {
            embeddable_anywhere: true,
            custom: Vec::new(),
        },
        base_path: "/".into(),
        oauth: None,
    }
}

fn deployment(commit: &str, run: RunSpec) -> Deployment {
    Deployment {
        space: space(),
        commit: commit.into(),
        image: format!("spaceport/alice-demo:{commit}"),
        run,
        secrets: BTreeMap::from([
            ("HF_TOKEN".into(), "hf_x".into()),
            ("UNLISTED".into(), "no".into()),
        ]),
        host_port: None,
    }
}

fn settings() -> RunSettings {
    RunSettings {
        poll_interval: Duration::from_millis(10),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        drain: Duration::from_millis(10),
        ..RunSettings::default()
    }
}

fn runner(engine: &Arc<FakeEngine>, gpus: Vec<GpuInfo>) -> Runner<FakeEngine> {
    Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(gpus))),
        settings(),
    )
}

/// Waits (generously) for the Space to reach `stage`.
async fn reach(runner: &Runner<FakeEngine>, stage: Stage) -> SpaceStatus {
    let mut rx = runner.watch(&space()).unwrap();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let s = rx.borrow_and_update().clone();
            if s.stage == stage {
                return s;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("never reached {stage}: {:?}", runner.status(&space())))
}

fn created(engine: &FakeEngine) -> Vec<ContainerSpec> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            EngineCall::Create(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Waits until the runner has started the container.
async fn started(engine: &FakeEngine, id: &str) {
    let wait = async {
        while !engine.calls().contains(&EngineCall::Start(id.to_owned())) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the container was never started");
}

fn gpu(index: u32) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        name: "Tesla T4".into(),
        memory_total_bytes: 16 << 30,
        memory_used_bytes: 0,
        utilization_percent: 0,
    }
}

#[test]
fn the_container_spec_carries_env_secrets_limits_labels_and_uid_1000() {
    let d = deployment("abc", run_spec(1));
    let settings = ContainerSettings {
        ca_bundle: Some("/etc/ca.pem".into()),
        ..ContainerSettings::default()
    };
    let spec = container_spec(
        &d.space,
        "abc",
        &d.image,
        &d.run,
        &d.secrets,
        &[gpu(3)],
        &settings,
    );
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.env["SPACE_ID"], "alice/demo");
    assert_eq!(spec.env["HF_TOKEN"], "hf_x");
    assert!(
        !spec.env.contains_key("UNLISTED"),
        "only the plan's secrets"
    );
    assert_eq!(spec.env["REQUESTS_CA_BUNDLE"], spec::CA_BUNDLE_TARGET);
    assert!(spec.mounts.iter().all(|m| m.read_only));
    assert_eq!(spec.bind_ip, "127.0.0.1");
    assert_eq!(spec.container_port, Some(7860));
    assert_eq!(spec.nano_cpus, Some(2_000_000_000));
    assert_eq!(spec.memory_bytes, Some(16 << 30));
    assert_eq!(spec.pids_limit, Some(4096));
    assert_eq!(spec.gpu_device_ids, ["GPU-3"]);
    assert_eq!(spec.labels[MANAGED_LABEL], "true");
    assert_eq!(spec.labels[SPACE_LABEL], "alice/demo");
    assert_eq!(spec.labels[spec::GPUS_LABEL], "GPU-3");
    assert_eq!(spec.name, "spaceport-alice-demo-abc");
}

#[test]
fn an_image_that_names_no_user_runs_as_1000_on_the_isolated_network_unless_the_operator_allows() {
    let d = deployment(
        "abc",
        RunSpec {
            user: None,
            ..run_spec(0)
        },
    );
    let spec_with = |settings: &ContainerSettings| {
        container_spec(&d.space, "abc", &d.image, &d.run, &d.secrets, &[], settings)
    };
    let spec = spec_with(&ContainerSettings::default());
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.fallback_home.as_deref(), Some(spec::FALLBACK_HOME));
    assert_eq!(spec.network.as_deref(), Some(spec::SPACES_NETWORK));
    assert!(!spec.read_only_root);
    let own = spec_with(&ContainerSettings {
        image_user: true,
        read_only_root: true,
        ..ContainerSettings::default()
    });
    assert_eq!(own.user, None, "the image's USER stands");
    assert_eq!(own.fallback_home, None);
    assert!(own.read_only_root);
}

#[tokio::test]
async fn a_space_is_app_starting_until_its_app_answers_then_running() {
    let engine = Arc::new(FakeEngine::new());
    let (port, status) = app(503).await;
    engine.set_host_port(port);
    let runner = runner(&engine, Vec::new());
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::AppStarting);
    // 503 is not an answer that counts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::AppStarting);
    status.store(404, Ordering::SeqCst);
    let s = reach(&runner, Stage::Running).await;
    assert_eq!(s.host_port, Some(port));
    assert_eq!(s.commit.as_deref(), Some("v1"));
    let log = runner.logs(&space()).unwrap().lines();
    assert!(
        log[0].starts_with("===== Application Startup at "),
        "{log:?}"
    );
}

#[tokio::test]
async fn an_app_that_exits_while_starting_is_a_runtime_error_with_its_log_tail() {
    let engine = Arc::new(FakeEngine::new());
    let runner = runner(&engine, Vec::new());
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    let id = runner.status(&space()).unwrap().container_id.unwrap();
    started(&engine, &id).await;
    engine.exit_container(
        &id,
        1,
        &[
            "Traceback (most recent call last):",
            "ImportError: no module named foo",
        ],
    );
    let s = reach(&runner, Stage::RuntimeError).await;
    let message = s.message.unwrap();
    assert!(message.contains("exited with code 1"), "{message}");
    assert!(
        message.contains("ImportError: no module named foo"),
        "{message}"
    );
}

#[tokio::test]
async fn an_app_that_never_answers_fails_at_its_startup_timeout() {
    let engine = Arc::new(FakeEngine::new());
    let runner = runner(&engine, Vec::new());
    let mut run = run_spec(0);
    run.startup_timeout_secs = 0;
    runner.deploy(deployment("v1", run)).await.unwrap();
    let s = reach(&runner, Stage::RuntimeError).await;
    assert!(s.message.unwrap().contains("startup timeout of 0 s"));
}

#[tokio::test]
async fn a_crash_after_running_restarts_with_backoff_and_runs_again() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    engine.set_host_port(port);
    // A backoff long enough for the test to see RUNTIME_ERROR before the restart.
    let runner = Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
        RunSettings {
            backoff_initial: Duration::from_secs(2),
            ..settings()
        },
    );
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    let s = reach(&runner, Stage::Running).await;
    let id = s.container_id.unwrap();
    engine.exit_container(&id, 137, &["Killed"]);
    let s = reach(&runner, Stage::RuntimeError).await;
    assert!(s.message.unwrap().contains("restarting in"));
    let s = reach(&runner, Stage::Running).await;
    assert_eq!(s.restarts, 1);
    assert_eq!(s.container_id.as_deref(), Some(id.as_str()));
    let starts = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, EngineCall::Start(i) if *i == id))
        .count();
    assert_eq!(starts, 2);
}

#[tokio::test]
async fn a_new_version_takes_traffic_only_once_healthy() {
    let engine = Arc::new(FakeEngine::new());
    let (old_port, _) = app(200).await;
    engine.set_host_port(old_port);
    let runner = runner(&engine, Vec::new());
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    let old = reach(&runner, Stage::Running).await;

    runner.building(&space());
    assert_eq!(
        runner.status(&space()).unwrap().stage,
        Stage::RunningBuilding
    );

    let (new_port, new_status) = app(502).await;
    engine.set_host_port(new_port);
    runner.deploy(deployment("v2", run_spec(0))).await.unwrap();
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::RunningAppStarting);
    assert_eq!(
        s.host_port,
        Some(old_port),
        "traffic stays on the old version"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        runner.status(&space()).unwrap().stage,
        Stage::RunningAppStarting
    );

    new_status.store(200, Ordering::SeqCst);
    let s = reach(&runner, Stage::Running).await;
    assert_eq!(s.host_port, Some(new_port));
    assert_eq!(s.commit.as_deref(), Some("v2"));
    // The old version drains (briefly, in these settings), then goes.
    let old_id = old.container_id.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !engine.calls().contains(&EngineCall::Remove(old_id.clone())) {
        assert!(
            Instant::now() < deadline,
            "the old version was never removed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(engine.containers().iter().all(|c| c.id != old_id));
}

#[tokio::test]
async fn a_failed_build_keeps_the_live_version_serving() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    engine.set_host_port(port);
    let runner = runner(&engine, Vec::new());
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    reach(&runner, Stage::Running).await;
    runner.building(&space());
    runner.build_failed(&space(), "pip failed");
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Running);
    assert!(s.message.unwrap().contains("pip failed"));

    let fresh = runner_for_other_space(&engine);
    fresh.building(&space());
    fresh.build_failed(&space(), "pip failed");
    assert_eq!(fresh.status(&space()).unwrap().stage, Stage::BuildError);
}

fn runner_for_other_space(engine: &Arc<FakeEngine>) -> Runner<FakeEngine> {
    runner(engine, Vec::new())
}

#[tokio::test]
async fn gpu_spaces_get_their_gpus_and_wait_visibly_when_none_fit() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    engine.set_host_port(port);
    let runner = runner(&engine, vec![gpu(0)]);
    runner.deploy(deployment("v1", run_spec(1))).await.unwrap();
    assert_eq!(created(&engine)[0].gpu_device_ids, ["GPU-0"]);
    reach(&runner, Stage::Running).await;

    let other = SpaceId::parse("bob/big").unwrap();
    let mut d = deployment("w1", run_spec(1));
    d.space = other.clone();
    let err = runner.deploy(d).await.unwrap_err();
    assert!(matches!(err, RunError::NoGpu(_)), "{err}");
    let queue = runner.gpus().lock().unwrap().queue();
    assert_eq!(queue[0].space, other);
    assert!(
        runner
            .status(&other)
            .unwrap()
            .message
            .unwrap()
            .contains("waiting for GPUs")
    );

    runner.stop(&space()).await.unwrap();
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::Stopped);
    assert!(runner.gpus().lock().unwrap().held_by(&space()).is_empty());
    assert!(engine.containers().is_empty());
}

#[tokio::test]
async fn a_restarted_runtime_adopts_running_containers_without_restarting_them() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    engine.set_host_port(port);
    let first = runner(&engine, vec![gpu(0), gpu(1)]);
    first.deploy(deployment("v1", run_spec(1))).await.unwrap();
    let before = reach(&first, Stage::Running).await;
    let gpu_before = first.gpus().lock().unwrap().held_by(&space());
    drop(first);
    let calls_before = engine.calls().len();

    let second = runner(&engine, vec![gpu(0), gpu(1)]);
    let adopted = second.adopt().await.unwrap();
    assert_eq!(adopted, [space()]);
    let after = reach(&second, Stage::Running).await;
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.commit.as_deref(), Some("v1"));
    assert_eq!(second.gpus().lock().unwrap().held_by(&space()), gpu_before);
    let new_calls = &engine.calls()[calls_before..];
    assert!(
        !new_calls.iter().any(|c| matches!(
            c,
            EngineCall::Create(_) | EngineCall::Start(_) | EngineCall::Stop(_)
        )),
        "{new_calls:?}"
    );
}

fn starts(engine: &FakeEngine, id: &str) -> usize {
    engine
        .calls()
        .iter()
        .filter(|c| matches!(c, EngineCall::Start(i) if i == id))
        .count()
}

fn running(engine: &FakeEngine, id: &str) -> bool {
    engine.containers().iter().any(|c| c.id == id && c.running)
}

fn exists(engine: &FakeEngine, id: &str) -> bool {
    engine.containers().iter().any(|c| c.id == id)
}

/// A deployment on a fixed host port (the app's).
fn fixed(commit: &str, run: RunSpec, port: u16) -> Deployment {
    Deployment {
        host_port: Some(port),
        ..deployment(commit, run)
    }
}

#[tokio::test]
async fn a_fixed_host_port_is_published_and_labelled() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, Vec::new());
    runner.deploy(fixed("v1", run_spec(0), port)).await.unwrap();
    let spec = &created(&engine)[0];
    assert_eq!(spec.host_port, Some(port));
    assert_eq!(spec.labels[spec::HOST_PORT_LABEL], port.to_string());
    assert_eq!(reach(&runner, Stage::Running).await.host_port, Some(port));
}

#[tokio::test]
async fn sleep_stops_and_keeps_the_container_and_frees_its_gpus() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, vec![gpu(0)]);
    runner.deploy(fixed("v1", run_spec(1), port)).await.unwrap();
    let id = reach(&runner, Stage::Running).await.container_id.unwrap();
    assert!(!runner.is_sleeping(&space()));

    runner.sleep(&space()).await.unwrap();
    assert!(runner.is_sleeping(&space()));
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Stopped);
    assert_eq!(s.message.as_deref(), Some(SLEEPING_MESSAGE));
    assert_eq!(s.container_id.as_deref(), Some(id.as_str()));
    assert!(exists(&engine, &id) && !running(&engine, &id));
    assert!(engine.calls().contains(&EngineCall::Stop(id.clone())));
    assert!(!engine.calls().contains(&EngineCall::Remove(id.clone())));
    assert!(runner.gpus().lock().unwrap().held_by(&space()).is_empty());

    // The stop was no crash: no restart, no RUNTIME_ERROR.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::Stopped);
    assert_eq!(starts(&engine, &id), 1);

    // Sleeping twice is sleeping once.
    runner.sleep(&space()).await.unwrap();
    assert!(runner.is_sleeping(&space()));
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::Stopped);
}

#[tokio::test]
async fn wake_starts_the_same_container_and_returns_running() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, vec![gpu(0)]);
    runner.deploy(fixed("v1", run_spec(1), port)).await.unwrap();
    let id = reach(&runner, Stage::Running).await.container_id.unwrap();
    runner.sleep(&space()).await.unwrap();
    let calls_before = engine.calls().len();

    runner.wake(&space()).await.unwrap();
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Running, "wake returns once the app answers");
    assert_eq!(s.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(s.host_port, Some(port));
    assert!(!runner.is_sleeping(&space()));
    assert_eq!(
        engine.calls()[calls_before..],
        [EngineCall::Start(id.clone())],
        "a wake is one start: no create, no remove"
    );
    assert_eq!(
        runner.gpus().lock().unwrap().held_by(&space()),
        [gpu(0)],
        "the GPUs it had"
    );
    // Waking what runs returns at once.
    runner.wake(&space()).await.unwrap();
    assert_eq!(starts(&engine, &id), 2);
    // And a woken app is supervised again: a crash restarts it.
    engine.exit_container(&id, 137, &["Killed"]);
    reach(&runner, Stage::RuntimeError).await;
    let s = reach(&runner, Stage::Running).await;
    assert_eq!(s.restarts, 1);
}

#[tokio::test]
async fn concurrent_wakes_start_the_container_once() {
    let engine = Arc::new(FakeEngine::new());
    let (port, status) = app(200).await;
    let runner = Arc::new(runner(&engine, Vec::new()));
    runner.deploy(fixed("v1", run_spec(0), port)).await.unwrap();
    let id = reach(&runner, Stage::Running).await.container_id.unwrap();
    runner.sleep(&space()).await.unwrap();
    // The app answers only once all the callers wait.
    status.store(503, Ordering::SeqCst);
    let wakes: Vec<_> = (0..5)
        .map(|_| {
            let r = runner.clone();
            tokio::spawn(async move { r.wake(&space()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::AppStarting);
    status.store(200, Ordering::SeqCst);
    for w in wakes {
        w.await.unwrap().unwrap();
    }
    assert_eq!(
        starts(&engine, &id),
        2,
        "one for the deploy, one for all wakes"
    );
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::Running);
}

#[tokio::test]
async fn a_wake_whose_app_exits_fails_with_its_log_tail() {
    let engine = Arc::new(FakeEngine::new());
    let (port, status) = app(200).await;
    let runner = Arc::new(runner(&engine, Vec::new()));
    runner.deploy(fixed("v1", run_spec(0), port)).await.unwrap();
    let id = reach(&runner, Stage::Running).await.container_id.unwrap();
    runner.sleep(&space()).await.unwrap();
    status.store(503, Ordering::SeqCst);
    let r = runner.clone();
    let wake = tokio::spawn(async move { r.wake(&space()).await });
    while starts(&engine, &id) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.exit_container(&id, 1, &["CUDA error: out of memory"]);
    let err = wake.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RunError::WakeFailed { reason, .. } if reason.contains("out of memory")),
        "{err}"
    );
}

#[tokio::test]
async fn sleep_while_starting_keeps_the_only_version_and_drops_a_replacement() {
    let engine = Arc::new(FakeEngine::new());
    let (port, status) = app(503).await;
    engine.set_host_port(port);
    let runner = runner(&engine, Vec::new());
    // Nothing serves yet: the starting version is the one that sleeps.
    runner.deploy(deployment("v1", run_spec(0))).await.unwrap();
    let v1 = runner.status(&space()).unwrap().container_id.unwrap();
    started(&engine, &v1).await;
    runner.sleep(&space()).await.unwrap();
    assert!(runner.is_sleeping(&space()));
    assert!(exists(&engine, &v1) && !running(&engine, &v1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runner.status(&space()).unwrap().stage, Stage::Stopped);
    status.store(200, Ordering::SeqCst);
    runner.wake(&space()).await.unwrap();
    assert_eq!(
        runner.status(&space()).unwrap().container_id.as_deref(),
        Some(v1.as_str())
    );

    // A new version still starting beside the serving one is dropped.
    let (new_port, _) = app(503).await;
    engine.set_host_port(new_port);
    runner.deploy(deployment("v2", run_spec(0))).await.unwrap();
    let v2 = created(&engine)[1].name.clone();
    let v2 = engine
        .containers()
        .into_iter()
        .find(|c| c.name == v2)
        .unwrap()
        .id;
    started(&engine, &v2).await;
    runner.sleep(&space()).await.unwrap();
    assert!(!exists(&engine, &v2), "the starting replacement is removed");
    assert!(exists(&engine, &v1) && !running(&engine, &v1));
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Stopped);
    assert_eq!(s.container_id.as_deref(), Some(v1.as_str()));
}

#[tokio::test]
async fn stop_removes_a_sleeping_container() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, Vec::new());
    runner.deploy(fixed("v1", run_spec(0), port)).await.unwrap();
    reach(&runner, Stage::Running).await;
    runner.sleep(&space()).await.unwrap();
    runner.stop(&space()).await.unwrap();
    assert!(engine.containers().is_empty());
    assert!(!runner.is_sleeping(&space()));
    let s = runner.status(&space()).unwrap();
    assert_eq!((s.stage, s.message), (Stage::Stopped, None));
    let err = runner.wake(&space()).await.unwrap_err();
    assert!(matches!(err, RunError::NotAsleep { .. }), "{err}");
}

#[tokio::test]
async fn a_deploy_replaces_a_sleeping_version() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, Vec::new());
    runner.deploy(fixed("v1", run_spec(0), port)).await.unwrap();
    let v1 = reach(&runner, Stage::Running).await.container_id.unwrap();
    runner.sleep(&space()).await.unwrap();
    runner.deploy(fixed("v2", run_spec(0), port)).await.unwrap();
    assert!(!runner.is_sleeping(&space()));
    assert!(!exists(&engine, &v1));
    let s = reach(&runner, Stage::Running).await;
    assert_eq!(s.commit.as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_restarted_runtime_adopts_a_stopped_container_as_sleeping_and_wakes_it() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let first = runner(&engine, vec![gpu(0)]);
    first.deploy(fixed("v1", run_spec(1), port)).await.unwrap();
    let id = reach(&first, Stage::Running).await.container_id.unwrap();
    first.sleep(&space()).await.unwrap();
    drop(first);

    let second = runner(&engine, vec![gpu(0)]);
    assert_eq!(second.adopt().await.unwrap(), [space()]);
    assert!(second.is_sleeping(&space()));
    let s = second.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Stopped);
    assert_eq!(s.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(s.commit.as_deref(), Some("v1"));
    assert!(second.gpus().lock().unwrap().held_by(&space()).is_empty());
    let calls_before = engine.calls().len();

    second.wake(&space()).await.unwrap();
    let s = second.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Running);
    assert_eq!(s.host_port, Some(port), "the fixed port, from its label");
    assert_eq!(engine.calls()[calls_before..], [EngineCall::Start(id)]);
    assert_eq!(second.gpus().lock().unwrap().held_by(&space()), [gpu(0)]);
}

#[tokio::test]
async fn a_woken_space_whose_gpus_were_taken_gets_a_new_container_with_others() {
    let engine = Arc::new(FakeEngine::new());
    let (port, _) = app(200).await;
    let runner = runner(&engine, vec![gpu(0), gpu(1)]);
    runner.deploy(fixed("v1", run_spec(1), port)).await.unwrap();
    let old = reach(&runner, Stage::Running).await.container_id.unwrap();
    runner.sleep(&space()).await.unwrap();
    // Another Space takes the freed GPU 0 meanwhile.
    let bob = SpaceId::parse("bob/big").unwrap();
    let taken = runner
        .gpus()
        .lock()
        .unwrap()
        .allocate(
            &bob,
            &GpuRequest {
                count: 1,
                model: None,
            },
        )
        .unwrap();
    assert_eq!(taken, [gpu(0)]);

    runner.wake(&space()).await.unwrap();
    let s = runner.status(&space()).unwrap();
    assert_eq!(s.stage, Stage::Running);
    let new = s.container_id.unwrap();
    assert_ne!(new, old);
    assert!(!exists(&engine, &old));
    let spec = created(&engine).pop().unwrap();
    assert_eq!(spec.gpu_device_ids, ["GPU-1"]);
    assert_eq!(spec.labels[spec::GPUS_LABEL], "GPU-1");
    assert_eq!(spec.host_port, Some(port));
    assert_eq!(runner.gpus().lock().unwrap().held_by(&space()), [gpu(1)]);

    // With no GPU left, a wake waits visibly and the Space stays asleep.
    runner.sleep(&space()).await.unwrap();
    runner
        .gpus()
        .lock()
        .unwrap()
        .allocate(
            &SpaceId::parse("carol/big").unwrap(),
            &GpuRequest {
                count: 1,
                model: None,
            },
        )
        .unwrap();
    let err = runner.wake(&space()).await.unwrap_err();
    assert!(matches!(err, RunError::NoGpu(_)), "{err}");
    assert!(runner.is_sleeping(&space()));
    assert!(
        runner
            .status(&space())
            .unwrap()
            .message
            .unwrap()
            .contains("waiting for GPUs")
    );
}
