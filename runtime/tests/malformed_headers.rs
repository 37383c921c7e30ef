//! Every malformed README in tests/fixtures/malformed fails with exactly the
//! errors listed for it in expected.tsv (position and code), each with a message.

use spaceport_runtime::config::parse_readme;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

type Expected = BTreeMap<String, BTreeSet<(usize, usize, String)>>;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed")
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(dir().join("expected.tsv")).expect("expected.tsv");
    let mut out = Expected::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "bad expected.tsv line: {line:?}");
        let (l, c) = cols[1].split_once(':').expect("line:column");
        out.entry(cols[0].to_owned()).or_default().insert((
            l.parse().expect("line"),
            c.parse().expect("column"),
            cols[2].to_owned(),
        ));
    }
    out
}

#[test]
fn every_malformed_file_has_expectations() {
    let expected = expected();
    let files: BTreeSet<String> = std::fs::read_dir(dir())
        .expect("fixture folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    assert!(files.len() >= 40, "only {} malformed fixtures", files.len());
    let listed: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(files, listed, "fixtures and expected.tsv disagree");
}

#[test]
fn malformed_files_fail_with_the_expected_errors() {
    let mut mismatches = Vec::new();
    for (file, want) in expected() {
        let bytes = std::fs::read(dir().join(&file)).expect("fixture");
        let parsed = parse_readme(&bytes);
        assert!(parsed.config.is_none(), "{file} was accepted");
        let got: BTreeSet<(usize, usize, String)> = parsed
            .errors()
            .map(|d| (d.position.line, d.position.column, d.code.to_string()))
            .collect();
        for d in parsed.errors() {
            assert!(!d.message.is_empty(), "{file}: empty message");
            assert!(
                !d.message.contains('\n'),
                "{file}: message spans lines: {:?}",
                d.message
            );
        }
        if got != want {
            mismatches.push(format!("{file}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
