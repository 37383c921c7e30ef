//! End-to-end test of links in a pushed Space: the real `spaceport up`,
//! the real git client. A hostile user pushes links that climb out of the
//! exported tree (through a link to its own folder, so each link's text
//! alone looks harmless) towards the hub's secrets, its database, the
//! system's files and another user's private Space; anonymous visitors
//! must never get those bytes, and the legitimate files must still serve.

mod hub;

use std::path::Path;
use std::time::Duration;

use hub::{Git, Hub, example};
use serde_json::json;

const DIARY: &str = "alice's private diary: the-unguessable-diary-bytes\n";

fn link(work: &Path, name: &str, target: &str) {
    std::os::unix::fs::symlink(target, work.join(name)).unwrap();
}

/// Every way an anonymous visitor reaches a path of the Space's app.
async fn anonymous_gets(hub: &Hub, space: &str, path: &str) -> Vec<(String, u16, Vec<u8>)> {
    let by_host = hub
        .request("GET", path, Some(&hub.host_of(space)), None, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path} by host: {e}"));
    let apps = format!("/apps/{space}{path}");
    let by_path = hub
        .request("GET", &apps, None, None, None)
        .await
        .unwrap_or_else(|e| panic!("GET {apps}: {e}"));
    vec![
        (
            format!("{} {path}", hub.host_of(space)),
            by_host.0,
            by_host.2,
        ),
        (apps, by_path.0, by_path.2),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn create_static_space(hub: &Hub, token: &str, space: &str, private: bool) {
    let (owner, name) = space.split_once('/').unwrap();
    let (s, created) = hub
        .api_as(
            token,
            "POST",
            "/api/repos/create",
            Some(json!({"name": name, "organization": owner, "type": "space", "sdk": "static", "private": private})),
        )
        .await;
    assert_eq!(s, 200, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_pushed_to_a_static_space_never_serve_files_from_outside_its_tree() {
    let git = Git::new();
    let hub = Hub::start(&[]).await;
    let alice = hub.user("alice").await;
    let mallory = hub.user("mallory").await;

    // Alice's private Space, exported into the data dir's trees/.
    let private = "alice/notes";
    create_static_space(&hub, &alice, private, true).await;
    let notes = git.repo(&hub.git_url(private, &alice), &example("static-hello"));
    std::fs::write(notes.path().join("diary.txt"), DIARY).unwrap();
    git.commit_all(notes.path(), "diary");
    git.ok(notes.path(), &["push", "origin", "main"]);
    hub.wait_stage(private, &["RUNNING"], Duration::from_secs(60))
        .await;
    let alice_commit = git
        .ok(notes.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let diary_on_disk = hub
        .data
        .join("trees/alice/notes")
        .join(&alice_commit)
        .join("diary.txt");
    assert!(diary_on_disk.is_file(), "{}", diary_on_disk.display());

    let secret_key = std::fs::read(hub.data.join("secret.key")).expect("the hub's key file");
    assert!(secret_key.len() >= 16, "the key file holds a key");
    let passwd = std::fs::read("/etc/passwd").expect("/etc/passwd");
    assert!(contains(&passwd, b"root:"));

    // Mallory's public Space: from its tree (trees/mallory/site/<commit>/)
    // each `r` stays in place, so the `..` after them climb out, while
    // the text of each link never climbs above the folder holding it.
    let space = "mallory/site";
    create_static_space(&hub, &mallory, space, false).await;
    let work = git.repo(&hub.git_url(space, &mallory), &example("static-hello"));
    let w = work.path();
    std::fs::write(
        w.join("index.html"),
        "<!doctype html><h1>mallory's home</h1>\n",
    )
    .unwrap();
    link(w, "r", ".");
    link(w, "alias.html", "index.html");
    link(w, "key", "r/r/r/r/../../../../secret.key");
    link(w, "db", "r/r/r/r/../../../../spaceport.db");
    link(w, "trees", "r/r/r/../../..");
    link(
        w,
        "passwd",
        &format!("{}{}etc/passwd", "r/".repeat(20), "../".repeat(20)),
    );
    git.commit_all(w, "links");
    let out = git.ok(w, &["push", "origin", "main"]);
    assert!(out.contains("remote:"), "{out}");
    let pushed = git.ok(w, &["rev-parse", "HEAD"]).trim().to_owned();

    let body = hub
        .wait_stage(
            space,
            &["RUNNING", "CONFIG_ERROR", "BUILD_ERROR", "RUNTIME_ERROR"],
            Duration::from_secs(60),
        )
        .await;
    if body["stage"] == "RUNNING" {
        // Give the route a moment, so a leak cannot hide behind a 502.
        for _ in 0..50 {
            if let Ok((200, _)) = hub.visit(space, "/").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stolen = format!("/trees/alice/notes/{alice_commit}/diary.txt");
    for path in ["/key", "/db", "/passwd", stolen.as_str(), "/r/r/key"] {
        for (how, status, bytes) in anonymous_gets(&hub, space, path).await {
            assert!(
                !contains(&bytes, &secret_key),
                "{how} served the hub's key ({status})"
            );
            assert!(
                !contains(&bytes, b"SQLite format 3"),
                "{how} served the hub's database ({status})"
            );
            assert!(
                !contains(&bytes, b"root:"),
                "{how} served /etc/passwd ({status})"
            );
            assert!(
                !contains(&bytes, DIARY.as_bytes()),
                "{how} served alice's private file ({status})"
            );
        }
    }

    // The Space says why, naming a link; the push itself was kept.
    assert_eq!(body["stage"], "CONFIG_ERROR", "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("link '") && message.contains("outside the repo"),
        "{message}"
    );
    let remote = git.ok(w, &["ls-remote", "origin", "refs/heads/main"]);
    assert!(remote.starts_with(&pushed), "{remote} is not {pushed}");

    // The download API gives a link as git holds it: its text.
    let (s, _, bytes) = hub
        .get(&format!("/spaces/{space}/resolve/{pushed}/key"), None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, b"r/r/r/r/../../../../secret.key");

    // Without the escaping links, the Space serves, links inside included.
    for name in ["key", "db", "trees", "passwd"] {
        std::fs::remove_file(w.join(name)).unwrap();
    }
    git.commit_all(w, "only links inside");
    git.ok(w, &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    for path in ["/", "/alias.html", "/r/r/index.html"] {
        let mut served = Vec::new();
        for _ in 0..50 {
            served = anonymous_gets(&hub, space, path).await;
            if served.iter().all(|(_, s, _)| *s == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (how, status, bytes) in served {
            assert_eq!(status, 200, "{how}");
            assert!(contains(&bytes, b"mallory's home"), "{how}");
        }
    }
}
