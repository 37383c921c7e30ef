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
    let old_id = old.container_id.unwrap();
    assert!(engine.calls().contains(&EngineCall::Remove(old_id.clone())));
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
