//! Every real Space header in tests/fixtures/real validates, and survives a
//! parse -> serialize -> parse round trip unchanged.

use spaceport_runtime::config::{emit, parse_readme, parse_yaml};
use std::path::PathBuf;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable fixture"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn there_are_at_least_forty_real_headers_of_every_sdk() {
    let all = fixtures();
    assert!(all.len() >= 40, "only {} fixtures", all.len());
    for sdk in ["gradio", "streamlit", "docker", "static"] {
        let n = all
            .iter()
            .filter(|(_, b)| {
                parse_readme(b)
                    .config
                    .is_some_and(|c| c.sdk.as_str() == sdk)
            })
            .count();
        assert!(n >= 3, "only {n} {sdk} fixtures");
    }
}

#[test]
fn every_real_header_validates() {
    let mut failures = Vec::new();
    for (name, bytes) in fixtures() {
        let parsed = parse_readme(&bytes);
        if !parsed.is_valid() {
            let errs: Vec<String> = parsed
                .errors()
                .map(|d| d.display(&name).to_string())
                .collect();
            failures.push(errs.join("\n"));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid real headers:\n{}",
        failures.join("\n")
    );
}

#[test]
fn real_headers_round_trip() {
    for (name, bytes) in fixtures() {
        let first = parse_readme(&bytes).config.expect("valid fixture");
        let yaml = emit::to_yaml(&first);
        let second = parse_yaml(&yaml);
        assert!(
            second.errors().next().is_none(),
            "{name}: emitted YAML does not parse:\n{yaml}\n{:?}",
            second.diagnostics
        );
        assert_eq!(
            second.config.as_ref(),
            Some(&first),
            "{name} changed in a round trip:\n{yaml}"
        );
    }
}
