//! What running a Space as a local process takes, decided without I/O:
//! the Python environment it needs (and the key under which that
//! environment is built once and reused), the command that starts it on a
//! given port, and the variables it gets instead of a container's paths.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Sdk, SpaceConfig};
use crate::plan::dockerfile::sdk_requirement;
use crate::plan::{PlanSettings, RepoFiles};

/// Why a Space cannot run as a local process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    #[error(
        "docker Spaces need a Docker engine: this spaceport runs Spaces as local processes, which cannot build or run a Dockerfile (start Docker, or set DOCKER_HOST, and restart spaceport)"
    )]
    NeedsDocker,
}

/// The Python packages a Space needs: the texts of its dependency files and
/// the SDK's own pins. Two Spaces (or two edits of one Space) with the same
/// inputs share one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnv {
    /// `major.minor` of the interpreter the environment is made with.
    pub interpreter: String,
    pub pre_requirements: Option<String>,
    pub requirements: Option<String>,
    /// The SDK's pip requirements (`gradio==6.31.0`, ...).
    pub sdk: Vec<String>,
}

impl PythonEnv {
    /// The environment's key: a digest of everything that shapes it.
    pub fn key(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |name: &str, text: &str| {
            ctx.update(name.as_bytes());
            ctx.update(&(text.len() as u64).to_le_bytes());
            ctx.update(text.as_bytes());
        };
        field("python", &self.interpreter);
        field("pre", self.pre_requirements.as_deref().unwrap_or("\0none"));
        field("req", self.requirements.as_deref().unwrap_or("\0none"));
        for r in &self.sdk {
            field("sdk", r);
        }
        let digest = ctx.finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("py{}-{}", self.interpreter, &hex[..20])
    }
}

/// How a Space runs as a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApp {
    pub sdk: Sdk,
    /// The app file (gradio, streamlit) or the page (static), relative.
    pub app_file: String,
    /// `None` for static Spaces.
    pub python: Option<PythonEnv>,
    /// The Python version the README asks for; a different interpreter
    /// is used with a warning.
    pub wanted_python: String,
    /// A static Space's build command, run in its folder.
    pub build_command: Option<String>,
}

impl LocalApp {
    /// Plans a Space for the process runner. `interpreter` is the
    /// `major.minor` of the Python that will make its environment.
    pub fn plan(
        config: &SpaceConfig,
        files: &RepoFiles,
        settings: &PlanSettings,
        interpreter: &str,
    ) -> Result<LocalApp, LocalError> {
        let python = match config.sdk {
            Sdk::Docker => return Err(LocalError::NeedsDocker),
            Sdk::Static => None,
            Sdk::Gradio | Sdk::Streamlit => Some(PythonEnv {
                interpreter: interpreter.to_owned(),
                pre_requirements: files.text("pre-requirements.txt").map(str::to_owned),
                requirements: files.text("requirements.txt").map(str::to_owned),
                sdk: sdk_requirement(config, settings),
            }),
        };
        Ok(LocalApp {
            sdk: config.sdk,
            app_file: config.effective_app_file().to_string(),
            python,
            wanted_python: config.effective_python_version().as_str().to_owned(),
            build_command: config.app_build_command.clone(),
        })
    }

    /// Things the owner should know: what a process cannot do that a
    /// container would.
    pub fn warnings(&self, files: &RepoFiles) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(py) = &self.python
            && !self.wanted_python.starts_with(&py.interpreter)
            && !py.interpreter.starts_with(&self.wanted_python)
        {
            w.push(format!(
                "the README asks for Python {}; this machine's Python {} is used",
                self.wanted_python, py.interpreter
            ));
        }
        if files.contains("packages.txt") {
            w.push(
                "packages.txt is not installed: the process runner cannot install Debian packages; install them on this machine"
                    .into(),
            );
        }
        w
    }

    /// The command that serves the app on `bind:port` with the
    /// environment's interpreter. `reload` asks the SDK's own reloader
    /// (gradio's reload mode with that demo variable, streamlit's
    /// run-on-save) where it has one.
    pub fn command(
        &self,
        python: &Path,
        bind: &str,
        port: u16,
        reload: Option<&str>,
    ) -> Vec<String> {
        let py = python.display().to_string();
        match self.sdk {
            Sdk::Streamlit => {
                let mut c = vec![
                    py,
                    "-m".into(),
                    "streamlit".into(),
                    "run".into(),
                    self.app_file.clone(),
                    format!("--server.port={port}"),
                    format!("--server.address={bind}"),
                    "--server.headless=true".into(),
                    "--server.enableCORS=false".into(),
                    "--server.enableXsrfProtection=false".into(),
                    "--browser.gatherUsageStats=false".into(),
                ];
                if reload.is_some() {
                    c.push("--server.runOnSave=true".into());
                }
                c
            }
            _ => match reload {
                // `python -m gradio app.py`: gradio's reload mode.
                Some(demo) => vec![
                    py,
                    "-m".into(),
                    "gradio".into(),
                    self.app_file.clone(),
                    "--demo-name".into(),
                    demo.to_owned(),
                ],
                None => vec![py, self.app_file.clone()],
            },
        }
    }

    /// Variables that replace the container's: where the app listens,
    /// and, given a `home`, home and caches there instead of `/home/user`.
    pub fn env(&self, bind: &str, port: u16, home: Option<&Path>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("PORT".to_owned(), port.to_string()),
            ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
        ]);
        if let Some(home) = home {
            let hf_home = home.join(".cache").join("huggingface");
            env.insert("HOME".to_owned(), home.display().to_string());
            env.insert("HF_HOME".to_owned(), hf_home.display().to_string());
            env.insert(
                "HF_HUB_CACHE".to_owned(),
                hf_home.join("hub").display().to_string(),
            );
        }
        if self.sdk == Sdk::Gradio {
            env.insert("GRADIO_SERVER_NAME".into(), bind.into());
            env.insert("GRADIO_SERVER_PORT".into(), port.to_string());
        }
        env
    }
}

/// The name of the variable a gradio app's demo is bound to, when the app
/// file binds one at top level (`demo = gr.Blocks(...)`, `with gr.Blocks()
/// as demo:`): what gradio's reload mode needs to find it.
pub fn gradio_demo_name(source: &str) -> Option<String> {
    const MAKERS: &[&str] = &[
        "Blocks(",
        "Interface(",
        "ChatInterface(",
        "TabbedInterface(",
    ];
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut found: Option<String> = None;
    for line in source.lines() {
        // Top level only: gradio's reloader reads a module attribute.
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("with ")
            && MAKERS.iter().any(|m| rest.contains(m))
            && let Some((_, name)) = rest.rsplit_once(" as ")
        {
            let name = name.trim_end_matches(':').trim();
            if is_ident(name) {
                found = Some(name.to_owned());
                if name == "demo" {
                    break;
                }
            }
        } else if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if is_ident(name) && MAKERS.iter().any(|m| value.contains(m)) {
                found = Some(name.to_owned());
                if name == "demo" {
                    break;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_readme;

    fn config(front: &str) -> SpaceConfig {
        parse_readme(format!("---\n{front}\n---\n").as_bytes())
            .config
            .expect("valid README")
    }

    #[test]
    fn environments_are_keyed_by_what_shapes_them() {
        let settings = PlanSettings::default();
        let c = config("sdk: gradio\nsdk_version: 4.44.1");
        let files = RepoFiles::new()
            .with("app.py", "x")
            .with("requirements.txt", "numpy\n");
        let a = LocalApp::plan(&c, &files, &settings, "3.11").unwrap();
        let edited = files.clone().with("app.py", "y");
        let b = LocalApp::plan(&c, &edited, &settings, "3.11").unwrap();
        let key = |app: &LocalApp| app.python.as_ref().unwrap().key();
        assert_eq!(key(&a), key(&b), "code edits reuse the environment");
        let more = RepoFiles::new().with("requirements.txt", "numpy\npandas\n");
        let c2 = LocalApp::plan(&c, &more, &settings, "3.11").unwrap();
        assert_ne!(key(&a), key(&c2), "new requirements make a new one");
        let other_sdk = LocalApp::plan(
            &config("sdk: gradio\nsdk_version: 5.0.0"),
            &files,
            &settings,
            "3.11",
        )
        .unwrap();
        assert_ne!(key(&a), key(&other_sdk));
        let other_python = LocalApp::plan(&c, &files, &settings, "3.12").unwrap();
        assert_ne!(key(&a), key(&other_python));
        assert!(key(&a).starts_with("py3.11-"));
        // No file and an empty file differ.
        let empty = RepoFiles::new().with("requirements.txt", "");
        let none = RepoFiles::new();
        assert_ne!(
            key(&LocalApp::plan(&c, &empty, &settings, "3.11").unwrap()),
            key(&LocalApp::plan(&c, &none, &settings, "3.11").unwrap())
        );
    }

    #[test]
    fn docker_spaces_are_refused_with_the_reason() {
        let err = LocalApp::plan(
            &config("sdk: docker"),
            &RepoFiles::new(),
            &PlanSettings::default(),
            "3.11",
        )
        .unwrap_err();
        assert!(err.to_string().contains("need a Docker engine"), "{err}");
    }

    #[test]
    fn commands_listen_where_they_are_told() {
        let settings = PlanSettings::default();
        let py = Path::new("/venv/bin/python");
        let st = LocalApp::plan(
            &config("sdk: streamlit\napp_file: main.py"),
            &RepoFiles::new(),
            &settings,
            "3.11",
        )
        .unwrap();
        let cmd = st.command(py, "127.0.0.1", 4321, None);
        assert_eq!(
            cmd[..5],
            ["/venv/bin/python", "-m", "streamlit", "run", "main.py"]
        );
        assert!(cmd.contains(&"--server.port=4321".to_owned()));
        assert!(cmd.contains(&"--server.address=127.0.0.1".to_owned()));
        assert!(!cmd.iter().any(|a| a.contains("runOnSave")));
        assert!(
            st.command(py, "127.0.0.1", 1, Some(""))
                .contains(&"--server.runOnSave=true".to_owned())
        );
        let gr =
            LocalApp::plan(&config("sdk: gradio"), &RepoFiles::new(), &settings, "3.11").unwrap();
        assert_eq!(
            gr.command(py, "127.0.0.1", 9, None),
            ["/venv/bin/python", "app.py"]
        );
        assert_eq!(
            gr.command(py, "127.0.0.1", 9, Some("ui")),
            [
                "/venv/bin/python",
                "-m",
                "gradio",
                "app.py",
                "--demo-name",
                "ui"
            ]
        );
        let env = gr.env("127.0.0.1", 9, Some(Path::new("/h")));
        assert_eq!(env["GRADIO_SERVER_PORT"], "9");
        assert_eq!(env["GRADIO_SERVER_NAME"], "127.0.0.1");
        assert_eq!(env["HF_HUB_CACHE"], "/h/.cache/huggingface/hub");
    }

    #[test]
    fn warnings_name_what_a_process_cannot_do() {
        let app = LocalApp::plan(
            &config("sdk: gradio\npython_version: \"3.9\""),
            &RepoFiles::new(),
            &PlanSettings::default(),
            "3.11",
        )
        .unwrap();
        let files = RepoFiles::new().with("packages.txt", "ffmpeg\n");
        let w = app.warnings(&files);
        assert_eq!(w.len(), 2, "{w:?}");
        let same = LocalApp::plan(
            &config("sdk: gradio\npython_version: \"3.11\""),
            &RepoFiles::new(),
            &PlanSettings::default(),
            "3.11",
        )
        .unwrap();
        assert!(same.warnings(&RepoFiles::new()).is_empty());
    }

    #[test]
    fn the_demo_variable_is_found_at_top_level() {
        assert_eq!(
            gradio_demo_name(
                "import gradio as gr\ndemo = gr.Interface(fn=f, inputs='text', outputs='text')\ndemo.launch()\n"
            ),
            Some("demo".into())
        );
        assert_eq!(
            gradio_demo_name(
                "import gradio as gr\nwith gr.Blocks(title='x') as app:\n    gr.Markdown('hi')\napp.launch()\n"
            ),
            Some("app".into())
        );
        assert_eq!(
            gradio_demo_name(
                "def make():\n    demo = gr.Blocks()\n    return demo\nmake().launch()\n"
            ),
            None
        );
        assert_eq!(gradio_demo_name("x = 1 == 2\n"), None);
    }
}
