use super::*;
use crate::engine::{EngineCall, FakeEngine};

fn space() -> SpaceId {
    SpaceId::parse("alice/demo").unwrap()
}

fn image(dockerfile: &str) -> ImageBuild {
    ImageBuild {
        dockerfile: dockerfile.into(),
        generated: false,
        build_args: BTreeMap::from([("MODE".into(), "fast".into())]),
        build_secrets: vec!["TOKEN".into()],
        context_excludes: vec![".git".into()],
    }
}

fn request(folder: &std::path::Path, commit: &str, dockerfile: &str) -> BuildRequest {
    BuildRequest {
        space: space(),
        commit: commit.into(),
        folder: folder.to_owned(),
        image: image(dockerfile),
        secrets: BTreeMap::from([("TOKEN".into(), "s3cr3t-value".into())]),
        no_cache: false,
    }
}

fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/HEAD"), "x\n").unwrap();
    dir
}

fn builds(engine: &FakeEngine) -> Vec<(ImageBuildSpec, Vec<String>)> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            EngineCall::Build { spec, context } => Some((spec, context)),
            _ => None,
        })
        .collect()
}

#[test]
fn timestamps_are_utc_calendar_dates() {
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(utc_timestamp(at(0)), "1970-01-01 00:00:00");
    assert_eq!(utc_timestamp(at(1_700_000_000)), "2023-11-14 22:13:20");
    assert_eq!(utc_timestamp(at(951_782_400)), "2000-02-29 00:00:00");
}

#[test]
fn images_are_tagged_by_space_and_commit() {
    assert_eq!(image_tag(&space(), "ABC123"), "spaceport/alice-demo:abc123");
    assert_eq!(image_tag(&space(), "-x;y"), "spaceport/alice-demo:c-xy");
}

#[tokio::test]
async fn the_log_opens_with_hf_framing_and_carries_every_engine_line() {
    let engine = Arc::new(FakeEngine::new());
    engine.script_build(&["Step 1/2 : FROM scratch", "Step 2/2 : COPY . /"], Ok(()));
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    let handle = builder.start(request(dir.path(), "abc123", "FROM scratch\n"));
    let outcome = handle.wait().await;
    assert_eq!(
        outcome,
        BuildOutcome::Built {
            tag: "spaceport/alice-demo:abc123".into()
        }
    );
    let lines = handle.log.lines();
    assert!(
        lines[0].starts_with("===== Build Queued at ")
            && lines[0].ends_with(" / Commit SHA: abc123 ====="),
        "{lines:?}"
    );
    assert_eq!(
        lines[1..3],
        ["Step 1/2 : FROM scratch", "Step 2/2 : COPY . /"]
    );
    assert!(lines.last().unwrap().starts_with("===== Build Succeeded"));
}

#[tokio::test]
async fn the_context_leaves_out_excludes_and_build_args_reach_the_engine() {
    let engine = Arc::new(FakeEngine::new());
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    builder
        .start(request(dir.path(), "c1", "FROM scratch\n"))
        .wait()
        .await;
    let (spec, context) = builds(&engine).remove(0);
    assert_eq!(context, [DOCKERFILE_PATH, "app.py"]);
    assert_eq!(spec.dockerfile, DOCKERFILE_PATH);
    assert_eq!(spec.build_args["MODE"], "fast");
    assert!(
        spec.labels.is_empty(),
        "classic builds carry their labels in the Dockerfile"
    );
    assert!(
        !spec.buildkit,
        "no --mount: the classic builder streams output"
    );
    assert!(
        spec.secrets.is_empty(),
        "secrets only go to BuildKit mounts"
    );
}

#[tokio::test]
async fn secrets_reach_buildkit_as_private_files_that_are_gone_after_the_build() {
    let engine = Arc::new(FakeEngine::new());
    engine.script_build(&["token is s3cr3t-value"], Ok(()));
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    let dockerfile = "FROM scratch\nRUN --mount=type=secret,id=TOKEN true\n";
    let handle = builder.start(request(dir.path(), "c1", dockerfile));
    assert!(handle.wait().await.is_built());
    let (spec, _) = builds(&engine).remove(0);
    assert!(spec.buildkit);
    let file = &spec.secrets["TOKEN"];
    assert!(!file.exists(), "the secret file outlived the build");
    assert!(!spec.build_args.values().any(|v| v.contains("s3cr3t")));
    let log = handle.log.lines().join("\n");
    assert!(!log.contains("s3cr3t-value"), "{log}");
    assert!(log.contains("token is ***"));
}

#[tokio::test]
async fn a_failed_build_keeps_the_engine_error_in_the_log() {
    let engine = Arc::new(FakeEngine::new());
    engine.script_build(
        &["ERROR: No matching distribution found for nope==9.9"],
        Err(EngineError::BuildFailed(
            "The command '/bin/sh -c pip install' returned a non-zero code: 1".into(),
        )),
    );
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    let handle = builder.start(request(dir.path(), "c1", "FROM scratch\n"));
    let outcome = handle.wait().await;
    assert!(
        matches!(outcome, BuildOutcome::Failed { ref reason } if reason.contains("non-zero code"))
    );
    let log = handle.log.lines().join("\n");
    assert!(log.contains("No matching distribution found for nope==9.9"));
    assert!(log.contains("===== Build Failed"));
}

#[tokio::test]
async fn a_new_push_cancels_the_build_it_supersedes() {
    let engine = Arc::new(FakeEngine::new());
    engine.hang_next_build(&["Step 1/9 : FROM base"]);
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    let first = builder.start(request(dir.path(), "old", "FROM scratch\n"));
    // The first build is running (it took the hanging script) before the push.
    tokio::time::timeout(Duration::from_secs(30), async {
        while builds(&engine).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let second = builder.start(request(dir.path(), "new", "FROM scratch\n"));
    assert_eq!(
        first.wait().await,
        BuildOutcome::Cancelled {
            reason: "superseded by commit new".into()
        }
    );
    assert!(second.wait().await.is_built());
    assert_eq!(builder.current(&space()).unwrap().commit, "new");
    assert!(
        first
            .log
            .lines()
            .last()
            .unwrap()
            .contains("Build Cancelled")
    );
}

#[tokio::test]
async fn a_build_past_its_time_limit_is_stopped() {
    let engine = Arc::new(FakeEngine::new());
    engine.hang_next_build(&[]);
    let settings = BuildSettings {
        time_limit: Duration::from_millis(50),
        ..BuildSettings::default()
    };
    let builder = Builder::new(engine, settings);
    let dir = folder();
    let handle = builder.start(request(dir.path(), "c1", "FROM scratch\n"));
    assert_eq!(
        handle.wait().await,
        BuildOutcome::TimedOut {
            limit: Duration::from_millis(50)
        }
    );
}

#[tokio::test]
async fn an_owner_can_cancel_a_build() {
    let engine = Arc::new(FakeEngine::new());
    engine.hang_next_build(&[]);
    let builder = Builder::new(engine, BuildSettings::default());
    let dir = folder();
    let handle = builder.start(request(dir.path(), "c1", "FROM scratch\n"));
    handle.cancel("cancelled by the owner");
    assert_eq!(
        handle.wait().await,
        BuildOutcome::Cancelled {
            reason: "cancelled by the owner".into()
        }
    );
}

#[test]
fn labels_go_right_after_the_final_stages_from_in_one_step() {
    let labels = BTreeMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (SPACE_LABEL.to_owned(), "alice/demo".to_owned()),
    ]);
    let d = "ARG V=1\nFROM base AS build\nRUN make\nfrom scratch\nCOPY --from=build /out /\n";
    assert_eq!(
        label_after_last_from(d, &labels),
        "ARG V=1\nFROM base AS build\nRUN make\nfrom scratch\n\
         LABEL dev.spaceport.managed=\"true\" dev.spaceport.space=\"alice/demo\"\n\
         COPY --from=build /out /\n"
    );
    let continued = "FROM \\\n  scratch\nCMD [\"x\"]\n";
    assert_eq!(
        label_after_last_from(continued, &labels)
            .lines()
            .nth(2)
            .unwrap(),
        "LABEL dev.spaceport.managed=\"true\" dev.spaceport.space=\"alice/demo\""
    );
}

#[tokio::test]
async fn buildkit_builds_get_every_label_as_an_option() {
    let engine = Arc::new(FakeEngine::new());
    let builder = Builder::new(engine.clone(), BuildSettings::default());
    let dir = folder();
    let dockerfile = "FROM scratch\nRUN --mount=type=secret,id=TOKEN true\n";
    builder
        .start(request(dir.path(), "c1", dockerfile))
        .wait()
        .await;
    let (spec, _) = builds(&engine).remove(0);
    assert_eq!(spec.labels[COMMIT_LABEL], "c1");
    assert_eq!(spec.labels[SPACE_LABEL], "alice/demo");
}
