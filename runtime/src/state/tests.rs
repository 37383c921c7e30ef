use super::*;

#[test]
fn open_creates_db_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    assert!(data.join(DB_FILE).is_file());
    assert_eq!(std::fs::read(data.join(KEY_FILE)).unwrap().len(), 32);
    assert_eq!(store.dir(), data);
}
