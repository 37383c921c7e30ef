//! Measures spaceport's own paths for BENCHMARKS.md (driven by
//! runtime/scripts/bench-builds.sh):
//!
//! `bench_space build FOLDER COMMIT BASE_IMAGE [DOCKERFILE_OUT]`: plans the
//! Space in FOLDER and builds it through spaceport's builder; prints the
//! seconds taken and the tag. Writes the generated Dockerfile to
//! DOCKERFILE_OUT for the plain `docker build` anchor.
//!
//! `bench_space start IMAGE PORT RUNS`: starts the image as a Space through
//! spaceport's runner RUNS times and prints, per run, the seconds from the
//! container's start to the first HTTP answer (the runner's RUNNING).

use spaceport_runtime::build::{BuildOutcome, BuildRequest, BuildSettings, Builder};
use spaceport_runtime::config::parse_readme;
use spaceport_runtime::engine::{ContainerEngine, DockerEngine};
use spaceport_runtime::gpu::GpuAllocator;
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::{BuildPlan, HealthCheck, PlanSettings, SpaceContext, SpaceId, plan};
use spaceport_runtime::run::{Deployment, RunSettings, Runner};
use spaceport_runtime::stage::Stage;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let engine = Arc::new(DockerEngine::connect().await?);
    match args.first().map(String::as_str) {
        Some("build") if args.len() >= 4 => {
            build(engine, &args[1], &args[2], &args[3], args.get(4)).await
        }
        Some("start") if args.len() == 4 => {
            start(engine, &args[1], args[2].parse()?, args[3].parse()?).await
        }
        _ => anyhow::bail!(
            "usage: bench_space build FOLDER COMMIT BASE_IMAGE [DOCKERFILE_OUT] | start IMAGE PORT RUNS"
        ),
    }
}

async fn build(
    engine: Arc<DockerEngine>,
    folder: &str,
    commit: &str,
    base: &str,
    dockerfile_out: Option<&String>,
) -> anyhow::Result<()> {
    let space = SpaceId::parse("bench/space").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let read = spaceport_runtime::folder::read(&PathBuf::from(folder))?;
    let config = parse_readme(&read.readme)
        .config
        .ok_or_else(|| anyhow::anyhow!("invalid README"))?;
    let settings = PlanSettings {
        python_base_image: base.into(),
        ..PlanSettings::default()
    };
    let p = plan(
        &config,
        &read.files,
        &SpaceContext::new(space.clone()),
        &FlavorCatalog::builtin(),
        &settings,
    )?;
    let BuildPlan::Image(image) = p.build else {
        anyhow::bail!("not an image build")
    };
    if let Some(out) = dockerfile_out {
        std::fs::write(out, &image.dockerfile)?;
    }
    let builder = Builder::new(engine, BuildSettings::default());
    let started = Instant::now();
    let handle = builder.start(BuildRequest {
        space,
        commit: commit.into(),
        folder: folder.into(),
        image,
        secrets: BTreeMap::new(),
        no_cache: false,
    });
    if std::env::var_os("BENCH_LOG").is_some() {
        let (history, mut live) = handle.log.subscribe();
        for line in history {
            eprintln!("{:7.2} {line}", started.elapsed().as_secs_f64());
        }
        tokio::spawn(async move {
            while let Ok(line) = live.recv().await {
                eprintln!("{:7.2} {line}", started.elapsed().as_secs_f64());
            }
        });
    }
    let outcome = handle.wait().await;
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        BuildOutcome::Built { tag } => {
            println!("{secs:.2} {tag}");
            Ok(())
        }
        other => anyhow::bail!("{other:?}\n{}", handle.log.lines().join("\n")),
    }
}

async fn start(
    engine: Arc<DockerEngine>,
    image: &str,
    port: u16,
    runs: usize,
) -> anyhow::Result<()> {
    let space = SpaceId::parse("bench/start").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut run = spaceport_runtime::plan::RunSpec {
        port: Some(port),
        user: None,
        env: BTreeMap::new(),
        secret_env: Vec::new(),
        resources: spaceport_runtime::plan::Resources {
            flavor: "cpu-basic".into(),
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
            gpus: 0,
            gpu_model: None,
            pids_limit: 4096,
        },
        volumes: Vec::new(),
        health: Some(HealthCheck {
            port,
            path: "/".into(),
        }),
        startup_timeout_secs: 120,
        headers: spaceport_runtime::plan::ResponseHeaders {
            embeddable_anywhere: true,
            custom: Vec::new(),
        },
        base_path: "/".into(),
        oauth: None,
    };
    run.env.insert("BENCH".into(), "1".into());
    let settings = RunSettings {
        poll_interval: Duration::from_millis(10),
        ..RunSettings::default()
    };
    for i in 0..runs {
        let runner = Runner::new(
            engine.clone(),
            Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
            settings.clone(),
        );
        let commit = format!("run{i}");
        runner
            .deploy(Deployment {
                space: space.clone(),
                commit: commit.clone(),
                image: image.into(),
                run: run.clone(),
                secrets: BTreeMap::new(),
                host_port: None,
            })
            .await?;
        // The runner starts the container right after creating it; the
        // clock starts at deploy's return, which includes create's answer.
        let started = Instant::now();
        let mut rx = runner.watch(&space).expect("known");
        loop {
            let stage = rx.borrow_and_update().stage;
            if stage == Stage::Running {
                break;
            }
            if stage == Stage::RuntimeError {
                anyhow::bail!("{:?}", runner.status(&space));
            }
            rx.changed().await?;
        }
        println!("{:.3}", started.elapsed().as_secs_f64());
        runner.stop(&space).await?;
    }
    let leftovers = engine
        .list_containers(&[("dev.spaceport.space".into(), space.to_string())])
        .await?;
    for c in leftovers {
        engine.remove_container(&c.id).await?;
    }
    Ok(())
}
