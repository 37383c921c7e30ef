//! Measures a wake from sleep against its floor, a bare start of the same
//! stopped container:
//!
//! (a) the engine's `start` of the stopped container, until its first HTTP
//!     answer (polled every 5 ms);
//! (b) `Runner::wake` of the sleeping Space, until its first HTTP answer
//!     (wake returns once the runner's probe got one).
//!
//! The Space is a docker-SDK Space FROM scratch (a static busybox serving a
//! page on a fixed loopback port), built through spaceport's builder.
//! Needs a Docker engine and a static busybox.
//!
//! `cargo run --release -p spaceport-runtime --example bench_wake [ROUNDS] [BUSYBOX]`
//! (defaults: 20 rounds, /bin/busybox).

use spaceport_runtime::build::{BuildOutcome, BuildRequest, BuildSettings, Builder};
use spaceport_runtime::config::parse_readme;
use spaceport_runtime::engine::{ContainerEngine, DockerEngine};
use spaceport_runtime::gpu::GpuAllocator;
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::{BuildPlan, PlanSettings, SpaceContext, SpaceId, plan};
use spaceport_runtime::run::{Deployment, RunSettings, Runner, health};
use spaceport_runtime::stage::Stage;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = match args.next() {
        Some(r) => r.parse()?,
        None => 20,
    };
    let busybox = args.next().unwrap_or_else(|| "/bin/busybox".into());
    let engine = Arc::new(DockerEngine::connect().await?);
    let space = SpaceId::parse("bench/wake").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    remove_containers(&engine, &space).await?;

    let dir = tempfile::tempdir()?;
    let tag = build(&engine, &space, dir.path(), Path::new(&busybox)).await?;
    let result = measure(&engine, &space, dir.path(), &tag, rounds).await;
    remove_containers(&engine, &space).await?;
    engine.remove_image(&tag).await?;
    result
}

/// Builds the busybox Space the way the end-to-end tests do.
async fn build(
    engine: &Arc<DockerEngine>,
    space: &SpaceId,
    dir: &Path,
    busybox: &Path,
) -> anyhow::Result<String> {
    std::fs::copy(busybox, dir.join("busybox"))?;
    std::fs::write(
        dir.join("README.md"),
        "---\ntitle: Wake\nsdk: docker\napp_port: 8080\n---\n",
    )?;
    std::fs::write(dir.join("index.html"), "<h1>awake</h1>\n")?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\n\
         CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )?;
    let p = plan_of(space, dir)?;
    let BuildPlan::Image(image) = p.build else {
        anyhow::bail!("not an image build")
    };
    let handle = Builder::new(engine.clone(), BuildSettings::default()).start(BuildRequest {
        space: space.clone(),
        commit: "wake1".into(),
        folder: dir.to_owned(),
        image,
        secrets: BTreeMap::new(),
        no_cache: false,
    });
    match handle.wait().await {
        BuildOutcome::Built { tag } => Ok(tag),
        other => anyhow::bail!("{other:?}\n{}", handle.log.lines().join("\n")),
    }
}

fn plan_of(space: &SpaceId, dir: &Path) -> anyhow::Result<spaceport_runtime::plan::Plan> {
    let read = spaceport_runtime::folder::read(dir)?;
    let config = parse_readme(&read.readme)
        .config
        .ok_or_else(|| anyhow::anyhow!("invalid README"))?;
    Ok(plan(
        &config,
        &read.files,
        &SpaceContext::new(space.clone()),
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )?)
}

async fn measure(
    engine: &Arc<DockerEngine>,
    space: &SpaceId,
    dir: &Path,
    tag: &str,
    rounds: usize,
) -> anyhow::Result<()> {
    // busybox httpd as PID 1 ignores SIGTERM: a short grace keeps stops short.
    let runner = Runner::new(
        engine.clone(),
        Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
        RunSettings {
            stop_grace_secs: 1,
            ..RunSettings::default()
        },
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    runner
        .deploy(Deployment {
            space: space.clone(),
            commit: "wake1".into(),
            image: tag.into(),
            run: plan_of(space, dir)?.run,
            secrets: BTreeMap::new(),
            host_port: Some(port),
        })
        .await?;
    let mut rx = runner.watch(space).expect("known");
    loop {
        let s = rx.borrow_and_update().clone();
        match s.stage {
            Stage::Running => break,
            Stage::RuntimeError => anyhow::bail!("{:?}", s.message),
            _ => rx.changed().await?,
        }
    }
    let id = runner
        .status(space)
        .and_then(|s| s.container_id)
        .expect("running");

    let (mut bare, mut wake) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        runner.sleep(space).await?;
        let t = Instant::now();
        engine.start_container(&id).await?;
        first_answer(port).await?;
        bare.push(t.elapsed());
        engine.stop_container(&id, 1).await?;

        let t = Instant::now();
        runner.wake(space).await?;
        wake.push(t.elapsed());
    }
    runner.stop(space).await?;

    let (bare_median, bare_p90) = stats(&mut bare);
    let (wake_median, wake_p90) = stats(&mut wake);
    println!(
        "bare start -> first answer: median {:.1} ms, p90 {:.1} ms ({rounds} rounds)",
        ms(bare_median),
        ms(bare_p90)
    );
    println!(
        "Runner::wake -> first answer: median {:.1} ms, p90 {:.1} ms ({rounds} rounds)",
        ms(wake_median),
        ms(wake_p90)
    );
    println!(
        "wake costs {:+.1} ms (median) / {:+.1} ms (p90) over a bare start; budget +250 ms",
        ms(wake_median) - ms(bare_median),
        ms(wake_p90) - ms(bare_p90)
    );
    Ok(())
}

/// Polls every 5 ms until the app on `port` answers over HTTP.
async fn first_answer(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health::probe("127.0.0.1", port, "/").await {
        if Instant::now() > deadline {
            anyhow::bail!("no HTTP answer on port {port} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Median and 90th percentile (nearest rank).
fn stats(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (v[v.len() / 2], at(0.9))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn remove_containers(engine: &DockerEngine, space: &SpaceId) -> anyhow::Result<()> {
    let label = [(
        spaceport_runtime::build::SPACE_LABEL.to_owned(),
        space.to_string(),
    )];
    for c in engine.list_containers(&label).await? {
        engine.remove_container(&c.id).await?;
    }
    Ok(())
}
