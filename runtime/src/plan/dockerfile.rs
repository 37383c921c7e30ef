//! The Dockerfile generated for gradio and streamlit Spaces, as Hugging Face
//! builds them: a Python base, the usual system packages plus packages.txt,
//! pre-requirements.txt then requirements.txt with the SDK pinned, a user
//! with uid 1000, the app in /home/user/app.
//!
//! Layers that depend only on the dependency files come before the code, so
//! a push that changes only code reuses them. Nothing the user wrote is
//! pasted into a shell line unchecked: package names are validated, the SDK
//! version is a checked type, and file names go through JSON quoting. The
//! file needs no `# syntax=` frontend (which would be pulled from a registry).

use super::PlanError;
use super::input::{PlanSettings, RepoFiles};
use crate::config::{Sdk, SpaceConfig};

/// Where the app lives in the image.
pub const APP_DIR: &str = "/home/user/app";
/// HF_HOME inside the image.
pub const HF_HOME: &str = "/home/user/.cache/huggingface";
/// HF_HUB_CACHE inside the image, where models and datasets are mounted.
pub const HF_HUB_CACHE: &str = "/home/user/.cache/huggingface/hub";
/// The uid (and gid) Spaces run as.
pub const SPACE_UID: u32 = 1000;

/// System packages every generated image gets, as on Hugging Face.
pub const BASE_APT_PACKAGES: &[&str] = &[
    "git", "git-lfs", "ffmpeg", "libsm6", "libxext6", "cmake", "rsync", "libgl1",
];

/// Reads packages.txt: one or more Debian package names per line, `#`
/// comments. A name may carry an `=version` or `:arch`.
pub fn parse_packages(text: &str) -> Result<Vec<String>, PlanError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        for token in line.split_whitespace() {
            if !is_package_name(token) {
                return Err(PlanError::InvalidPackage {
                    line: i + 1,
                    token: token.chars().take(80).collect(),
                });
            }
            if !out.iter().any(|p| p == token) {
                out.push(token.to_owned());
            }
        }
    }
    Ok(out)
}

fn is_package_name(token: &str) -> bool {
    let (name, version) = match token.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (token, None),
    };
    let (name, arch) = match name.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name, None),
    };
    let name_ok = name.len() >= 2
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    let arch_ok =
        arch.is_none_or(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()));
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'~' | b':'))
    });
    name_ok && arch_ok && version_ok
}

/// A JSON string literal, which a Dockerfile's exec form reads verbatim.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The command that starts the app, in exec form.
pub fn start_command(config: &SpaceConfig) -> Vec<String> {
    let app_file = config.effective_app_file();
    match config.sdk {
        Sdk::Streamlit => vec![
            "streamlit".into(),
            "run".into(),
            app_file.to_string(),
            format!("--server.port={}", config.effective_app_port()),
            "--server.address=0.0.0.0".into(),
            "--server.headless=true".into(),
            // The proxy decides who may frame the app and checks origins.
            "--server.enableCORS=false".into(),
            "--server.enableXsrfProtection=false".into(),
        ],
        _ => vec!["python".into(), app_file.to_string()],
    }
}

/// The pip requirement that pins the SDK.
pub(crate) fn sdk_requirement(config: &SpaceConfig, settings: &PlanSettings) -> Vec<String> {
    let pinned = config.sdk_version.as_ref().map(|v| v.as_str().to_owned());
    match config.sdk {
        Sdk::Gradio => {
            let version = pinned.unwrap_or_else(|| settings.default_gradio_version.clone());
            let extra = if config.hf_oauth == Some(true) {
                "[oauth]"
            } else {
                ""
            };
            vec![
                format!("gradio{extra}=={version}"),
                "uvicorn>=0.14.0".into(),
                "websockets>=10.4".into(),
                "spaces".into(),
            ]
        }
        Sdk::Streamlit => {
            let version = pinned.unwrap_or_else(|| settings.default_streamlit_version.clone());
            vec![format!("streamlit=={version}")]
        }
        Sdk::Docker | Sdk::Static => Vec::new(),
    }
}

/// Generates the Dockerfile of a gradio or streamlit Space.
pub fn generate(
    config: &SpaceConfig,
    files: &RepoFiles,
    settings: &PlanSettings,
) -> Result<String, PlanError> {
    let python = config.effective_python_version();
    let base = settings
        .python_base_image
        .replace("{python_version}", python.as_str());
    let packages = match files.text("packages.txt") {
        Some(text) => parse_packages(text)?,
        None => Vec::new(),
    };
    let chown = format!("--chown={SPACE_UID}:{SPACE_UID}");
    let mut d = String::new();
    let mut line = |s: &str| {
        d.push_str(s);
        d.push('\n');
    };
    line(&format!(
        "# Generated by spaceport for a {} Space. Do not edit: it is made anew on every build.",
        config.sdk
    ));
    line(&format!("FROM {base}"));
    line(
        "ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1",
    );
    line("");
    line("# System packages (the same for every Space: a shared layer).");
    line(&format!(
        "RUN apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/* && git lfs install --system",
        BASE_APT_PACKAGES.join(" ")
    ));
    line(&format!(
        "RUN useradd --create-home --uid {SPACE_UID} --shell /bin/bash user || true"
    ));
    if !packages.is_empty() {
        line("");
        line("# packages.txt");
        line(&format!(
            "RUN apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*",
            packages.join(" ")
        ));
    }
    line("");
    line("# Python dependencies: only the dependency files are copied, so a change");
    line("# to the code alone reuses these layers.");
    line(&format!("WORKDIR {APP_DIR}"));
    if files.contains("pre-requirements.txt") {
        line(&format!(
            "COPY {chown} pre-requirements.txt {APP_DIR}/pre-requirements.txt"
        ));
        line(&format!(
            "RUN pip install --upgrade pip && pip install -r {APP_DIR}/pre-requirements.txt"
        ));
    }
    let mut pip = vec!["pip install".to_owned()];
    if files.contains("requirements.txt") {
        line(&format!(
            "COPY {chown} requirements.txt {APP_DIR}/requirements.txt"
        ));
        pip.push(format!("-r {APP_DIR}/requirements.txt"));
    }
    pip.extend(sdk_requirement(config, settings).iter().map(|r| quoted(r)));
    line(&format!("RUN {}", pip.join(" ")));
    line("");
    line("# The app, as uid 1000.");
    line(&format!(
        "RUN mkdir -p {HF_HUB_CACHE} && chown -R {SPACE_UID}:{SPACE_UID} /home/user"
    ));
    line(&format!("USER {SPACE_UID}"));
    line(&format!(
        "ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH HF_HOME={HF_HOME} HF_HUB_CACHE={HF_HUB_CACHE} SYSTEM=spaces"
    ));
    if config.sdk == Sdk::Gradio {
        line(&format!(
            "ENV GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT={}",
            config.effective_app_port()
        ));
    }
    line(&format!("EXPOSE {}", config.effective_app_port()));
    let cmd: Vec<String> = start_command(config).iter().map(|a| quoted(a)).collect();
    line(&format!("CMD [{}]", cmd.join(", ")));
    // The code last: a push that changes only code rebuilds this one layer
    // (every step after a changed one is rebuilt, metadata steps included).
    line(&format!("COPY {chown} . {APP_DIR}"));
    Ok(d)
}

/// The Dockerfile that runs a static Space's build command; the site is the
/// folder of `app_file` inside the resulting image.
pub fn generate_static_build(command: &str, settings: &PlanSettings) -> String {
    let shell = ["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
    let shell: Vec<String> = shell.iter().map(|a| quoted(a)).collect();
    format!(
        "# Generated by spaceport to build a static Space. Do not edit.\n\
         FROM {image}\n\
         WORKDIR {APP_DIR}\n\
         COPY . {APP_DIR}\n\
         RUN [{run}]\n",
        image = settings.static_build_image,
        run = shell.join(", ")
    )
}

/// Where the image of a static Space keeps its files.
pub const STATIC_SITE_DIR: &str = "/srv/space";
/// The port the image of a static Space serves on.
pub const STATIC_PORT: u16 = 8080;

/// The Dockerfile of an image that serves a static Space, for engines that
/// run images only (Kubernetes): the site's files (the build command's
/// output, when there is one, from a first stage) on top of the spaceport
/// image, served by `spaceport serve-static`.
pub fn generate_static_image(site: &super::StaticSite, spaceport_image: &str) -> String {
    let root = site.root.trim_matches('/');
    let mut text = String::from("# Generated by spaceport to serve a static Space. Do not edit.\n");
    let from = match &site.build {
        Some(build) => {
            // The build's own FROM becomes a named stage.
            let mut named = false;
            for line in build.dockerfile.lines() {
                if !named && line.starts_with("FROM ") {
                    text.push_str(&format!("{line} AS site\n"));
                    named = true;
                } else if !line.starts_with('#') {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            let src = if root.is_empty() {
                APP_DIR.to_owned()
            } else {
                format!("{APP_DIR}/{root}")
            };
            format!("--from=site {src}/")
        }
        None => format!("{}/", if root.is_empty() { "." } else { root }),
    };
    let args = [
        "spaceport",
        "serve-static",
        STATIC_SITE_DIR,
        "--index",
        &site.index,
        "--listen",
        &format!("0.0.0.0:{STATIC_PORT}"),
    ];
    let args: Vec<String> = args.iter().map(|a| quoted(a)).collect();
    text.push_str(&format!(
        "FROM {spaceport_image}\n\
         COPY --chown=1000:1000 {from} {STATIC_SITE_DIR}/\n\
         USER 1000\n\
         EXPOSE {STATIC_PORT}\n\
         CMD [{}]\n",
        args.join(", ")
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_image_copies_the_site_and_serves_it() {
        let site = super::super::StaticSite {
            root: "public".into(),
            index: "index.html".into(),
            build: None,
        };
        let text = generate_static_image(&site, "spaceport:1");
        assert!(
            text.contains("FROM spaceport:1\nCOPY --chown=1000:1000 public/ /srv/space/\n"),
            "{text}"
        );
        assert!(text.contains(r#"CMD ["spaceport", "serve-static", "/srv/space", "--index", "index.html", "--listen", "0.0.0.0:8080"]"#), "{text}");
        let built = super::super::StaticSite {
            root: "dist".into(),
            index: "index.html".into(),
            build: Some(super::super::ImageBuild {
                dockerfile: generate_static_build("npm run build", &PlanSettings::default()),
                generated: true,
                build_args: Default::default(),
                build_secrets: vec![],
                context_excludes: vec![],
            }),
        };
        let text = generate_static_image(&built, "spaceport:1");
        assert!(text.contains(" AS site\n"), "{text}");
        assert!(
            text.contains("COPY --chown=1000:1000 --from=site /home/user/app/dist/ /srv/space/"),
            "{text}"
        );
        assert_eq!(text.matches("FROM ").count(), 2, "{text}");
    }

    #[test]
    fn packages_txt_is_read_like_apt_would() {
        let text = "# tools\nffmpeg\nlibgl1 libglib2.0-0  # inline comment\n\npython3-opencv=4.6.0+dfsg-11\nlibc6:amd64\nffmpeg\n";
        assert_eq!(
            parse_packages(text).unwrap(),
            [
                "ffmpeg",
                "libgl1",
                "libglib2.0-0",
                "python3-opencv=4.6.0+dfsg-11",
                "libc6:amd64"
            ]
        );
    }

    #[test]
    fn packages_txt_cannot_inject_shell() {
        for bad in [
            "curl; rm -rf /",
            "$(id)",
            "a&&b",
            "-o",
            "--allow-unauthenticated",
            "Pkg",
            "x=`id`",
        ] {
            let err = parse_packages(&format!("ok-pkg\n{bad}\n")).unwrap_err();
            assert!(
                matches!(err, PlanError::InvalidPackage { line: 2, .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn exec_form_arguments_are_json_quoted() {
        assert_eq!(quoted("a \"b\" \\c"), r#""a \"b\" \\c""#);
    }
}
