use std::path::Path;
use std::sync::Arc;

use spaceport_proxy::meter::utc_day;
use spaceport_proxy::{HyperLogLog, SpaceReport, Visibility};

use super::*;
use crate::plan::SpaceId;
use crate::repos::RepoKind;

const SECRET: &str = "s3cr3t-plaintext-value-9f8e7d";

fn id(s: &str) -> SpaceId {
    SpaceId::parse(s).unwrap()
}

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

fn space(store: &Store, s: &str) -> Repo {
    let owner = id(s).owner().to_owned();
    store
        .create_repo(NewRepo::new(RepoKind::Space, id(s), &owner))
        .unwrap()
}

fn invalid_message<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(StateError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn sketch(hashes: std::ops::Range<u64>) -> HyperLogLog {
    let mut h = HyperLogLog::default();
    for i in hashes {
        // The splitmix64 finalizer: distinct inputs, well-spread outputs.
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h.add_hash(z ^ (z >> 31));
    }
    h
}

fn report(space: &str, day: u32, visits: u64, uniques: HyperLogLog) -> SpaceReport {
    let (owner, name) = space.split_once('/').unwrap();
    SpaceReport {
        space: spaceport_proxy::SpaceId::new(owner, name).unwrap(),
        day,
        visits,
        requests_by_class: [0, visits, 1, 2, 3],
        bytes_in: 10,
        bytes_out: 100,
        wakes: 1,
        unique_visitors: uniques,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn raw_files(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in [DB_FILE, "spaceport.db-wal"] {
        if let Ok(bytes) = fs::read(dir.join(f)) {
            all.extend(bytes);
        }
    }
    all
}

#[test]
fn store_is_send_sync_and_shared() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = Arc::clone(&store);
            std::thread::spawn(move || s.create_user(&format!("user{i}"), None, false).unwrap())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.users().unwrap().len(), 4);
}

#[test]
fn open_creates_dir_db_and_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a/b");
    let store = open(&data);
    assert!(data.join(DB_FILE).is_file());
    assert_eq!(fs::read(data.join(KEY_FILE)).unwrap().len(), 32);
    assert_eq!(store.dir(), data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o077, 0, "data dir must not be open to others");
    }
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = store
        .conn()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let version: i64 = store
        .conn()
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}

#[test]
fn key_is_kept_across_opens_and_bad_key_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let key = fs::read(dir.path().join(KEY_FILE)).unwrap();
    drop(open(dir.path()));
    assert_eq!(fs::read(dir.path().join(KEY_FILE)).unwrap(), key);

    fs::write(dir.path().join(KEY_FILE), [1u8; 31]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StateError::Crypto(_)), "{err:?}");
    assert!(err.to_string().contains("31 bytes"), "{err}");
}

#[test]
fn missing_key_with_stored_secrets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        space(&store, "alice/app");
        store
            .set_secret(&id("alice/app"), "TOKEN", SECRET, None)
            .unwrap();
    }
    fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("encrypted secrets"), "{err}");
    assert!(!dir.path().join(KEY_FILE).exists(), "no new key was made");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .conn()
            .execute("UPDATE schema_version SET version = 999", [])
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let today = utc_day(SystemTime::now());
    let token = {
        let store = open(dir.path());
        store.create_user("alice", Some("Alice A."), true).unwrap();
        store.create_org("acme", None).unwrap();
        store.add_member("acme", "alice", OrgRole::Write).unwrap();
        let (_, token) = store
            .create_token("alice", "laptop", TokenScope::Write)
            .unwrap();
        let mut new = NewRepo::new(RepoKind::Space, id("acme/App"), "alice").private(true);
        new.settings.sdk = Some("gradio".into());
        new.settings.host_port = Some(41000);
        store.create_repo(new).unwrap();
        store
            .create_repo(NewRepo::new(RepoKind::Model, id("acme/bert"), "alice"))
            .unwrap();
        store
            .update_repo(RepoKind::Space, &id("acme/app"), |s| {
                s.sleep_time = Some(-1);
                s.commit = Some("abc123".into());
            })
            .unwrap();
        store
            .set_secret(&id("acme/app"), "HF_TOKEN", SECRET, Some("for the hub"))
            .unwrap();
        store
            .set_variable(&id("acme/app"), "MODEL", "bert", None)
            .unwrap();
        store.set_setting("domain", "example.org").unwrap();
        store
            .record_analytics(&[report("acme/App", today, 3, sketch(0..50))])
            .unwrap();
        token
    };

    let store = open(dir.path());
    let alice = store.user("alice").unwrap().unwrap();
    assert_eq!(alice.fullname.as_deref(), Some("Alice A."));
    assert!(alice.admin);
    assert_eq!(
        store.orgs_of("alice").unwrap()[0].1,
        OrgRole::Write,
        "membership kept"
    );
    let (user, info) = store.authenticate(&token).unwrap().unwrap();
    assert_eq!(
        (user.name.as_str(), info.scope),
        ("alice", TokenScope::Write)
    );
    let repo = store
        .repo(RepoKind::Space, &id("acme/app"))
        .unwrap()
        .unwrap();
    assert_eq!(repo.id.to_string(), "acme/App");
    assert!(repo.private);
    assert_eq!(repo.visibility, Visibility::Private);
    assert_eq!(repo.created_by, "alice");
    assert_eq!(
        repo.settings,
        RepoSettings {
            sdk: Some("gradio".into()),
            sleep_time: Some(-1),
            commit: Some("abc123".into()),
            host_port: Some(41000),
            ..RepoSettings::default()
        }
    );
    assert_eq!(store.repos(RepoKind::Model).unwrap().len(), 1);
    assert_eq!(
        store.secret_values(&id("acme/app")).unwrap()["HF_TOKEN"],
        SECRET
    );
    assert_eq!(
        store.secrets(&id("acme/app")).unwrap()[0]
            .description
            .as_deref(),
        Some("for the hub")
    );
    assert_eq!(store.variables(&id("acme/app")).unwrap()[0].value, "bert");
    assert_eq!(
        store.setting("domain").unwrap().as_deref(),
        Some("example.org")
    );
    let days = store.analytics(&id("acme/app"), 1).unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day, today);
    assert_eq!(days[0].visits, 3);
    assert!((45..=55).contains(&days[0].unique_visitors));
    assert_eq!(store.host_ports().unwrap(), vec![41000]);
}

#[test]
fn committed_state_survives_a_crash_snapshot() {
    // Copy the files as they lie on disk while the store is still open (no
    // clean close, no checkpoint): what a kill -9 leaves behind.
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_user("alice", None, false).unwrap();
    space(&store, "alice/app");
    store
        .set_secret(&id("alice/app"), "KEY", SECRET, None)
        .unwrap();
    for f in [DB_FILE, "spaceport.db-wal", KEY_FILE] {
        fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
    }
    let recovered = open(copy.path());
    assert!(recovered.user("alice").unwrap().is_some());
    assert_eq!(
        recovered.secret_values(&id("alice/app")).unwrap()["KEY"],
        SECRET
    );
    drop(store);
}

#[test]
fn secret_plaintext_never_reaches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    store
        .set_secret(&id("alice/app"), "API_KEY", SECRET, None)
        .unwrap();
    store
        .set_variable(&id("alice/app"), "PLAIN", "visible-variable-value", None)
        .unwrap();
    let raw = raw_files(dir.path());
    // The search itself works: the variable is there in clear.
    assert!(contains(&raw, b"visible-variable-value"));
    assert!(contains(&raw, b"API_KEY"));
    assert!(!contains(&raw, SECRET.as_bytes()));
    drop(store);
    // And after the WAL is folded into the database on close.
    let raw = raw_files(dir.path());
    assert!(contains(&raw, b"visible-variable-value"));
    assert!(!contains(&raw, SECRET.as_bytes()));
}

#[test]
fn secrets_are_write_only_and_bound_to_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    space(&store, "alice/other");
    let app = id("alice/app");
    store.set_secret(&app, "A", "one", Some("first")).unwrap();
    store.set_secret(&app, "B", "two", None).unwrap();
    // Updating without a description keeps it; the value changes.
    store
        .set_secret(&id("ALICE/APP"), "A", "uno", None)
        .unwrap();
    let metas = store.secrets(&app).unwrap();
    assert_eq!(
        metas.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(metas[0].description.as_deref(), Some("first"));
    let values = store.secret_values(&app).unwrap();
    assert_eq!(values["A"], "uno");
    assert_eq!(values["B"], "two");
    assert!(!format!("{metas:?}").contains("uno"));

    // A ciphertext moved to another row does not decrypt.
    store
        .set_secret(&id("alice/other"), "A", "x", None)
        .unwrap();
    store
        .conn()
        .execute(
            "UPDATE secrets SET value = (SELECT value FROM secrets s JOIN repos r ON r.id = s.repo_id \
             WHERE r.name = 'app' AND s.key = 'B') \
             WHERE key = 'A' AND repo_id = (SELECT id FROM repos WHERE name = 'other')",
            [],
        )
        .unwrap();
    let err = store.secret_values(&id("alice/other")).unwrap_err();
    assert!(matches!(err, StateError::Crypto(_)), "{err:?}");
    assert!(!err.to_string().contains("two"));

    assert!(store.delete_secret(&app, "A").unwrap());
    assert!(!store.delete_secret(&app, "A").unwrap());
    assert_eq!(store.secrets(&app).unwrap().len(), 1);
    assert!(matches!(
        store.set_secret(&id("alice/nope"), "A", "v", None),
        Err(StateError::NotFound(_))
    ));
}

#[test]
fn secret_and_variable_cannot_share_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    let app = id("alice/app");
    store.set_secret(&app, "KEY", "v", None).unwrap();
    assert!(matches!(
        store.set_variable(&app, "KEY", "v", None),
        Err(StateError::AlreadyExists(_))
    ));
    store.set_variable(&app, "OTHER", "v", None).unwrap();
    assert!(matches!(
        store.set_secret(&app, "OTHER", "v", None),
        Err(StateError::AlreadyExists(_))
    ));
}

#[test]
fn variables_crud() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    let app = id("alice/app");
    store.set_variable(&app, "B", "2", Some("bee")).unwrap();
    store.set_variable(&app, "A", "1", None).unwrap();
    store.set_variable(&app, "B", "3", None).unwrap();
    let vars = store.variables(&app).unwrap();
    assert_eq!(vars.len(), 2);
    assert_eq!((vars[0].key.as_str(), vars[0].value.as_str()), ("A", "1"));
    assert_eq!(
        (vars[1].value.as_str(), vars[1].description.as_deref()),
        ("3", Some("bee"))
    );
    assert!(store.delete_variable(&app, "A").unwrap());
    assert!(!store.delete_variable(&app, "A").unwrap());
    assert_eq!(store.variables(&app).unwrap().len(), 1);
}

#[test]
fn invalid_keys_values_and_names_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    let app = id("alice/app");
    for key in ["", "1ABC", "WITH-DASH", "A B", "É"] {
        let m = invalid_message(store.set_secret(&app, key, "v", None));
        assert!(m.contains("environment variable name"), "{m}");
        invalid_message(store.set_variable(&app, key, "v", None));
    }
    let long_key = "K".repeat(MAX_KEY_LEN + 1);
    invalid_message(store.set_secret(&app, &long_key, "v", None));
    store
        .set_secret(&app, &"K".repeat(MAX_KEY_LEN), "v", None)
        .unwrap();
    let m = invalid_message(store.set_secret(&app, "BIG", &"x".repeat(MAX_VALUE_LEN + 1), None));
    assert!(m.contains("value") && m.contains("65536"), "{m}");
    let m = invalid_message(store.set_variable(
        &app,
        "V",
        "v",
        Some(&"d".repeat(MAX_DESCRIPTION_LEN + 1)),
    ));
    assert!(m.contains("description"), "{m}");

    for name in ["", "-alice", "al ice", "bob.git", "api", "Spaces", "a/b"] {
        let m = invalid_message(store.create_user(name, None, false));
        assert!(m.starts_with("invalid name"), "{m}");
        invalid_message(store.create_org(name, None));
    }
    invalid_message(store.create_user(&"a".repeat(97), None, false));
    store.create_user(&"a".repeat(96), None, false).unwrap();
    store.create_user("A1_b.c-d", None, false).unwrap();
}

#[test]
fn users_and_orgs_share_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_user("alice", None, false).unwrap();
    store.create_org("acme", Some("Acme Inc.")).unwrap();
    for r in [
        store.create_user("ACME", None, false).map(|_| ()),
        store.create_org("Alice", None).map(|_| ()),
        store.create_user("alice", None, false).map(|_| ()),
        store.create_org("acme", None).map(|_| ()),
    ] {
        assert!(matches!(r, Err(StateError::AlreadyExists(_))), "{r:?}");
    }
    assert!(matches!(store.owner("ACME").unwrap(), Some(Owner::Org(o)) if o.name == "acme"));
    assert!(matches!(store.owner("Alice").unwrap(), Some(Owner::User(u)) if u.name == "alice"));
    assert!(store.owner("nobody").unwrap().is_none());
    assert!(
        store.user("acme").unwrap().is_none(),
        "an org is not a user"
    );
    assert_eq!(store.users().unwrap().len(), 1);
    assert_eq!(store.orgs().unwrap().len(), 1);
    assert!(matches!(
        store.add_member("alice", "acme", OrgRole::Read),
        Err(StateError::NotFound(_))
    ));
}

#[test]
fn membership_decides_access() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = store.create_user("alice", None, false).unwrap();
    let bob = store.create_user("bob", None, false).unwrap();
    let carol = store.create_user("carol", None, false).unwrap();
    let root = store.create_user("root", None, true).unwrap();
    store.create_org("acme", None).unwrap();
    store.add_member("acme", "alice", OrgRole::Admin).unwrap();
    store.add_member("acme", "bob", OrgRole::Read).unwrap();

    assert!(store.can_write(&alice, "alice").unwrap());
    assert!(store.can_write(&alice, "ALICE").unwrap());
    assert!(!store.can_write(&alice, "bob").unwrap());
    assert!(!store.can_read(&alice, "bob").unwrap());

    assert!(store.can_write(&alice, "acme").unwrap());
    assert!(store.can_read(&bob, "acme").unwrap());
    assert!(!store.can_write(&bob, "acme").unwrap());
    assert!(!store.can_read(&carol, "acme").unwrap());
    assert!(store.can_write(&root, "acme").unwrap());
    assert!(store.can_write(&root, "bob").unwrap());

    // Roles change in place; members leave.
    store.add_member("acme", "bob", OrgRole::Write).unwrap();
    assert!(store.can_write(&bob, "acme").unwrap());
    let members = store.members("acme").unwrap();
    assert_eq!(
        members
            .iter()
            .map(|(u, r)| (u.name.as_str(), *r))
            .collect::<Vec<_>>(),
        [("alice", OrgRole::Admin), ("bob", OrgRole::Write)]
    );
    assert!(store.remove_member("acme", "bob").unwrap());
    assert!(!store.remove_member("acme", "bob").unwrap());
    assert!(!store.can_read(&bob, "acme").unwrap());
    assert!(store.orgs_of("bob").unwrap().is_empty());
    assert_eq!(store.orgs_of("alice").unwrap()[0].0.name, "acme");
    assert!(matches!(
        store.add_member("acme", "nobody", OrgRole::Read),
        Err(StateError::NotFound(_))
    ));
}

#[test]
fn tokens_authenticate_only_with_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_user("alice", None, false).unwrap();
    store.create_user("bob", None, false).unwrap();
    let (info, value) = store.create_token("alice", "ci", TokenScope::Read).unwrap();
    assert!(value.starts_with(TOKEN_PREFIX));
    assert!(value.len() >= 40);
    assert_eq!(info.user, "alice");
    assert_eq!(info.last_used_at, None);

    let (user, used) = store.authenticate(&value).unwrap().unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(used.id, info.id);
    assert_eq!(used.scope, TokenScope::Read);
    assert!(!used.scope.can_write());
    assert!(used.last_used_at.is_some());

    assert!(store.authenticate("").unwrap().is_none());
    assert!(
        store
            .authenticate(&value[..value.len() - 1])
            .unwrap()
            .is_none()
    );
    assert!(store.authenticate(&format!("{value}x")).unwrap().is_none());
    assert!(store.authenticate(&value.to_uppercase()).unwrap().is_none());

    // Stored only as a hash.
    let stored: String = store
        .conn()
        .query_row("SELECT hash FROM tokens WHERE id = ?1", [info.id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_ne!(stored, value);
    assert_eq!(stored, tokens::hash_token(&value));
    assert_eq!(stored.len(), 64);
    assert!(!contains(&raw_files(dir.path()), value.as_bytes()));

    let (w, wvalue) = store
        .create_token("alice", "push", TokenScope::Write)
        .unwrap();
    assert!(
        store
            .authenticate(&wvalue)
            .unwrap()
            .unwrap()
            .1
            .scope
            .can_write()
    );
    let listed = store.tokens("alice").unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [info.id, w.id]
    );
    assert!(store.tokens("bob").unwrap().is_empty());
    assert!(matches!(
        store.tokens("nobody"),
        Err(StateError::NotFound(_))
    ));

    // Only the owner revokes.
    assert!(!store.revoke_token("bob", w.id).unwrap());
    assert!(store.revoke_token("alice", w.id).unwrap());
    assert!(store.authenticate(&wvalue).unwrap().is_none());
    assert!(matches!(
        store.create_token("nobody", "x", TokenScope::Read),
        Err(StateError::NotFound(_))
    ));
    invalid_message(store.create_token("alice", "", TokenScope::Read));
}

#[test]
fn last_used_is_written_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_user("alice", None, false).unwrap();
    let (info, value) = store.create_token("alice", "t", TokenScope::Read).unwrap();
    store.authenticate(&value).unwrap();
    store
        .conn()
        .execute(
            "UPDATE tokens SET last_used_at = last_used_at - 30 WHERE id = ?1",
            [info.id],
        )
        .unwrap();
    let t1 = store
        .authenticate(&value)
        .unwrap()
        .unwrap()
        .1
        .last_used_at
        .unwrap();
    let t2 = store
        .authenticate(&value)
        .unwrap()
        .unwrap()
        .1
        .last_used_at
        .unwrap();
    assert_eq!(t1, t2, "not rewritten within the minute");
    assert!(now() - t1 >= 30);
    store
        .conn()
        .execute(
            "UPDATE tokens SET last_used_at = last_used_at - 100 WHERE id = ?1",
            [info.id],
        )
        .unwrap();
    let t3 = store
        .authenticate(&value)
        .unwrap()
        .unwrap()
        .1
        .last_used_at
        .unwrap();
    assert!(now() - t3 < 5, "rewritten after a minute");
}

#[test]
fn imported_tokens_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_user("admin", None, true).unwrap();
    store.create_user("bob", None, false).unwrap();
    let value = "admin-token-from-the-environment";
    let a = store
        .import_token("admin", "env", TokenScope::Write, value)
        .unwrap();
    let b = store
        .import_token("admin", "env", TokenScope::Write, value)
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(store.tokens("admin").unwrap().len(), 1);
    let (user, _) = store.authenticate(value).unwrap().unwrap();
    assert!(user.admin);
    assert!(matches!(
        store.import_token("bob", "env", TokenScope::Write, value),
        Err(StateError::AlreadyExists(m)) if !m.contains(value)
    ));
    let m = invalid_message(store.import_token("admin", "env", TokenScope::Write, "short"));
    assert!(m.contains("16"), "{m}");
    assert!(!m.contains("short"));
}

#[test]
fn repos_are_case_insensitive_and_unique_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = space(&store, "Alice/My-App");
    assert!(!created.private);
    assert_eq!(created.visibility, Visibility::Public);
    let err = store
        .create_repo(NewRepo::new(RepoKind::Space, id("alice/my-app"), "alice"))
        .unwrap_err();
    assert!(matches!(err, StateError::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("already exists"));
    // The same id as another kind is fine.
    store
        .create_repo(NewRepo::new(RepoKind::Model, id("alice/my-app"), "alice"))
        .unwrap();

    let found = store
        .repo(RepoKind::Space, &id("ALICE/my-APP"))
        .unwrap()
        .unwrap();
    assert_eq!(found.id.to_string(), "Alice/My-App");
    assert!(
        store
            .repo(RepoKind::Dataset, &id("alice/my-app"))
            .unwrap()
            .is_none()
    );
    assert_eq!(store.repos(RepoKind::Space).unwrap().len(), 1);

    let changed = store
        .set_visibility(RepoKind::Space, &id("alice/my-app"), Visibility::Protected)
        .unwrap();
    assert!(changed.private);
    assert_eq!(changed.visibility, Visibility::Protected);
    assert!(matches!(
        store.update_repo(RepoKind::Space, &id("alice/none"), |_| {}),
        Err(StateError::NotFound(_))
    ));
    assert!(matches!(
        store.update_repo(RepoKind::Space, &id("alice/my-app"), |s| s.sleep_time =
            Some(-5)),
        Err(StateError::Invalid(_))
    ));
}

#[test]
fn host_ports_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/one");
    space(&store, "alice/two");
    store
        .update_repo(RepoKind::Space, &id("alice/one"), |s| {
            s.host_port = Some(40001)
        })
        .unwrap();
    assert!(matches!(
        store.update_repo(RepoKind::Space, &id("alice/two"), |s| s.host_port =
            Some(40001)),
        Err(StateError::AlreadyExists(_))
    ));
    // Keeping its own port is fine.
    store
        .update_repo(RepoKind::Space, &id("alice/one"), |s| s.paused = true)
        .unwrap();
    let mut new = NewRepo::new(RepoKind::Space, id("alice/three"), "alice");
    new.settings.host_port = Some(40001);
    assert!(matches!(
        store.create_repo(new),
        Err(StateError::AlreadyExists(_))
    ));
    assert_eq!(store.host_ports().unwrap(), vec![40001]);
}

#[test]
fn settings_json_tolerates_missing_and_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    store
        .conn()
        .execute(
            r#"UPDATE repos SET settings = '{"sdk":"docker","future_field":[1,2]}'"#,
            [],
        )
        .unwrap();
    let repo = store
        .repo(RepoKind::Space, &id("alice/app"))
        .unwrap()
        .unwrap();
    assert_eq!(repo.settings.sdk.as_deref(), Some("docker"));
    assert!(!repo.settings.paused);
}

#[test]
fn delete_repo_removes_its_secrets_variables_and_analytics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    let app = id("alice/app");
    store.set_secret(&app, "S", SECRET, None).unwrap();
    store.set_variable(&app, "V", "v", None).unwrap();
    store
        .record_analytics(&[report("alice/app", 20_000, 1, sketch(0..3))])
        .unwrap();
    assert!(
        store
            .delete_repo(RepoKind::Space, &id("ALICE/app"))
            .unwrap()
    );
    assert!(!store.delete_repo(RepoKind::Space, &app).unwrap());
    for table in ["secrets", "variables", "analytics"] {
        let n: i64 = store
            .conn()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    // A new Space of that name starts empty.
    space(&store, "alice/app");
    assert!(store.secrets(&app).unwrap().is_empty());
    assert!(store.secret_values(&app).unwrap().is_empty());
}

#[test]
fn analytics_add_counts_and_merge_uniques() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/app");
    space(&store, "bob/app");
    let day = 20_000;
    // Two replicas' reports for the same day: 0..1000 and 500..1500.
    store
        .record_analytics(&[
            report("alice/app", day, 5, sketch(0..1000)),
            report("alice/app", day, 7, sketch(500..1500)),
            report("alice/app", day - 2, 1, sketch(0..10)),
            report("nobody/gone", day, 9, sketch(0..10)),
        ])
        .unwrap();
    store
        .record_analytics(&[report("bob/app", day, 2, sketch(1000..2000))])
        .unwrap();

    let days = store
        .analytics_range(&id("alice/app"), day - 3, day)
        .unwrap();
    assert_eq!(
        days.iter().map(|d| d.day).collect::<Vec<_>>(),
        [day - 3, day - 2, day - 1, day]
    );
    assert_eq!(
        days[0],
        DayStats {
            day: day - 3,
            ..DayStats::default()
        }
    );
    assert_eq!(days[1].visits, 1);
    let d = &days[3];
    assert_eq!(d.visits, 12);
    assert_eq!(d.requests_by_class, [0, 12, 2, 4, 6]);
    assert_eq!((d.bytes_in, d.bytes_out, d.wakes), (20, 200, 2));
    // Union of 1500 distinct visitors, not 2000 (HLL error ~1.6%).
    assert!(
        (1400..=1600).contains(&d.unique_visitors),
        "{}",
        d.unique_visitors
    );

    let node = store.node_analytics_range(day, day).unwrap();
    assert_eq!(node.len(), 1);
    assert_eq!(node[0].visits, 14);
    assert!(
        (1900..=2100).contains(&node[0].unique_visitors),
        "{}",
        node[0].unique_visitors
    );

    // Windows ending today.
    assert!(store.analytics(&id("alice/app"), 0).unwrap().is_empty());
    let week = store.node_analytics(7).unwrap();
    assert_eq!(week.len(), 7);
    assert_eq!(week[6].day, utc_day(SystemTime::now()));
    assert!(matches!(
        store.analytics(&id("nobody/gone"), 7),
        Err(StateError::NotFound(_))
    ));
}

#[test]
fn settings_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.setting("x").unwrap(), None);
    store.set_setting("x", "1").unwrap();
    store.set_setting("x", "2").unwrap();
    assert_eq!(store.setting("x").unwrap().as_deref(), Some("2"));
    assert!(store.delete_setting("x").unwrap());
    assert_eq!(store.setting("x").unwrap(), None);
    invalid_message(store.set_setting("", "v"));
}

#[test]
fn error_messages_are_lowercase_and_keep_secrets_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store
        .set_secret(&id("alice/none"), "KEY", SECRET, None)
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains(SECRET));
    assert_eq!(msg, "space 'alice/none' not found");
}

#[test]
fn a_space_whose_host_label_another_space_has_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    space(&store, "alice/my-app");
    for clash in [
        "alice-my/app",
        "Alice/My_App",
        "alice/my.app",
        "ALICE-MY/APP",
    ] {
        let err = store
            .create_repo(NewRepo::new(RepoKind::Space, id(clash), "bob"))
            .unwrap_err();
        match &err {
            StateError::HostTaken {
                space,
                label,
                taken_by,
            } => {
                assert_eq!(space, clash);
                assert_eq!(label, "alice-my-app");
                assert_eq!(taken_by, "alice/my-app");
            }
            other => panic!("{clash}: expected HostTaken, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("failed to create space {clash}: "))
                && err.to_string().contains("alice-my-app")
                && !err.to_string().contains("alice/my-app"),
            "{err}"
        );
    }
    // The same id in another case is the same Space, refused as a duplicate.
    assert!(matches!(
        store.create_repo(NewRepo::new(RepoKind::Space, id("Alice/My-App"), "alice")),
        Err(StateError::AlreadyExists(_))
    ));
    // Models and datasets have no host; Spaces with their own labels pass.
    store
        .create_repo(NewRepo::new(RepoKind::Model, id("alice-my/app"), "bob"))
        .unwrap();
    space(&store, "alice-my/app2");
    space(&store, "alice/my-app-2");
    assert_eq!(store.repos(RepoKind::Space).unwrap().len(), 3);
}

#[cfg(unix)]
#[test]
fn store_files_are_owner_only_and_open_ones_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(&data);
    space(&store, "alice/app");
    assert_eq!(mode(&data), 0o700);
    for file in [DB_FILE, "spaceport.db-wal", "spaceport.db-shm", KEY_FILE] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(store);
    set(&data, 0o755);
    for file in [DB_FILE, "spaceport.db-wal", "spaceport.db-shm", KEY_FILE] {
        if data.join(file).exists() {
            set(&data.join(file), 0o644);
        }
    }
    let store = open(&data);
    assert_eq!(store.repos(RepoKind::Space).unwrap().len(), 1);
    assert_eq!(mode(&data), 0o700);
    for file in [DB_FILE, "spaceport.db-wal", "spaceport.db-shm", KEY_FILE] {
        if data.join(file).exists() {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
}
