use super::*;

#[test]
fn snapshot_links_are_relative_to_the_repo_folder() {
    assert_eq!(
        link_target("config.json", "abc"),
        PathBuf::from("../../blobs/abc")
    );
    assert_eq!(
        link_target("a/b/c.bin", "abc"),
        PathBuf::from("../../../../blobs/abc")
    );
}

#[test]
fn paths_are_encoded_for_urls() {
    assert_eq!(encode_path("sub dir/ü.txt"), "sub%20dir/%C3%BC.txt");
    assert_eq!(encode_path("a?b#c"), "a%3Fb%23c");
}

#[tokio::test]
async fn blobs_are_checked_against_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, b"hello\n").unwrap();
    // git hash-object of "hello\n"
    verify::check(&f, "ce013625030ba8dba906f756967f9e9ca394464a", 6)
        .await
        .unwrap();
    // sha256 of "hello\n"
    verify::check(
        &f,
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        6,
    )
    .await
    .unwrap();
    let bad = verify::check(&f, "ce013625030ba8dba906f756967f9e9ca394464b", 6)
        .await
        .unwrap_err();
    assert!(bad.starts_with(verify::MISMATCH), "{bad}");
    let short = verify::check(&f, "ce013625030ba8dba906f756967f9e9ca394464a", 7)
        .await
        .unwrap_err();
    assert!(short.starts_with(verify::MISMATCH), "{short}");
}

#[test]
fn eviction_spares_what_is_mounted_and_keeps_shared_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = HubCache::new(dir.path());
    let repo = cache.repo_folder(HubRepoType::Model, "a/m");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs/old"), vec![0u8; 1000]).unwrap();
    std::fs::write(repo.join("blobs/shared"), vec![0u8; 1000]).unwrap();
    std::fs::write(repo.join("blobs/new"), vec![0u8; 1000]).unwrap();
    link(&repo, "c1", "w.bin", "old").unwrap();
    link(&repo, "c1", "s.bin", "shared").unwrap();
    link(&repo, "c2", "w.bin", "new").unwrap();
    link(&repo, "c2", "s.bin", "shared").unwrap();
    write_atomic(&repo.join("refs/old"), b"c1").unwrap();
    let c1 = repo.join("snapshots/c1");
    let c2 = repo.join("snapshots/c2");
    let past = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(&c1)
        .unwrap()
        .set_modified(past)
        .unwrap();
    // Mounted: nothing goes.
    let in_use: HashSet<PathBuf> = [c1.clone(), c2.clone()].into();
    assert_eq!(cache.evict(1500, &in_use), 0);
    assert!(repo.join("blobs/old").is_file());
    // The older snapshot goes first, with the blob only it used.
    let freed = cache.evict(2000, &HashSet::new());
    assert_eq!(freed, 1000);
    assert!(!c1.exists() && c2.exists());
    assert!(!repo.join("blobs/old").exists());
    assert!(repo.join("blobs/shared").is_file() && repo.join("blobs/new").is_file());
    assert!(
        !repo.join("refs/old").exists(),
        "a ref to a removed snapshot goes"
    );
    // Under the cap: nothing more.
    assert_eq!(cache.evict(2000, &HashSet::new()), 0);
}

#[test]
fn views_refuse_snapshot_links_that_lead_outside_the_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.key");
    std::fs::write(&secret, b"the-secret-key-bytes").unwrap();
    let repo = dir.path().join("models--org--m");
    let snap = repo.join("snapshots").join("c1");
    std::fs::create_dir_all(snap.join("sub")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs").join("abc"), b"weights").unwrap();
    std::os::unix::fs::symlink(link_target("sub/w.bin", "abc"), snap.join("sub/w.bin")).unwrap();

    // A cache-made link is viewed as a plain file.
    let view = dir.path().join("view");
    make_view(&snap, None, &view).unwrap();
    assert_eq!(std::fs::read(view.join("sub/w.bin")).unwrap(), b"weights");

    // Links put there by hand, to a file or a folder elsewhere.
    for (name, target) in [
        ("key", secret.clone()),
        ("up", PathBuf::from("../../..")),
        ("etc", PathBuf::from("/etc")),
    ] {
        std::os::unix::fs::symlink(&target, snap.join(name)).unwrap();
        let view = dir.path().join(format!("view-{name}"));
        let err = make_view(&snap, None, &view).unwrap_err();
        assert!(err.contains("not a file of the cache's blobs"), "{err}");
        assert!(!view.exists(), "{name}: a view was made");
        std::fs::remove_file(snap.join(name)).unwrap();
    }
}
