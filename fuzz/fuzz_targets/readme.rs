//! Fuzzes everything `spaceport validate` does with a folder: the README's
//! front matter parser, the decoder, the emitter (a valid config must
//! survive parse -> serialize -> parse unchanged) and the plan, with the
//! repo's dependency files taken from the input too.
//!
//! Input layout: README bytes, then optionally a 0 byte and packages.txt,
//! then a 0 byte and requirements.txt, then a 0 byte and a Dockerfile.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spaceport_runtime::config::{emit, parse_readme};
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::{PlanSettings, RepoFiles, SpaceContext, SpaceId, plan};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let readme = parts.next().unwrap_or_default();
    let parsed = parse_readme(readme);
    for d in &parsed.diagnostics {
        assert!(d.position.line >= 1 && d.position.column >= 1);
        assert!(!d.message.contains('\n'));
    }
    let Some(config) = parsed.config else { return };

    let yaml = emit::to_front_matter(&config);
    let again = parse_readme(yaml.as_bytes());
    assert_eq!(again.config.as_ref(), Some(&config), "round trip changed:\n{yaml}");

    let mut files = RepoFiles::new()
        .with("README.md", "")
        .with("app.py", "")
        .with("index.html", "");
    for name in ["packages.txt", "requirements.txt", "Dockerfile"] {
        if let Some(part) = parts.next() {
            files.insert(name, Some(String::from_utf8_lossy(part).into_owned()));
        }
    }
    let context = SpaceContext::new(SpaceId::parse("fuzz/space").unwrap());
    if let Ok(p) = plan(&config, &files, &context, &FlavorCatalog::builtin(), &PlanSettings::default()) {
        // The generated Dockerfile never starts a line with anything but an
        // instruction, a comment or a continuation of our own making.
        if let spaceport_runtime::plan::BuildPlan::Image(image) = &p.build {
            if image.generated {
                for line in image.dockerfile.lines().filter(|l| !l.is_empty()) {
                    let word = line.split_whitespace().next().unwrap_or_default();
                    assert!(
                        ["#", "FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "CMD"].contains(&word),
                        "unexpected Dockerfile line {line:?}"
                    );
                }
            }
        }
    }
});
