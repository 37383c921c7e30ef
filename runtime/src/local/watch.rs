//! What a change to a Space's folder calls for in dev mode. Pure: a list
//! of changed paths in, one action out.

use std::path::Path;

/// Files whose change makes a new plan (and maybe a new environment).
const PLAN_FILES: &[&str] = &[
    "README.md",
    "requirements.txt",
    "pre-requirements.txt",
    "packages.txt",
];

/// Folders and files no app change lives in.
fn ignored(rel: &Path) -> bool {
    rel.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        s.starts_with('.')
            || matches!(
                s.as_ref(),
                "__pycache__" | "flagged" | "node_modules" | "gradio_cached_examples"
            )
    }) || rel
        .extension()
        .is_some_and(|e| matches!(e.to_str(), Some("pyc" | "pyo" | "swp" | "swx" | "tmp")))
        || rel.to_string_lossy().ends_with('~')
}

/// What to do about a batch of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Nothing the app reads.
    Nothing,
    /// The SDK's own reloader picks it up (or, for static Spaces, the
    /// next request reads the file).
    SdkReloads,
    /// The app must start again.
    Restart,
    /// The README or the dependencies changed: plan again, then restart.
    Replan,
}

/// How the running app takes changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloads {
    /// The SDK reloads changed Python code itself.
    pub python: bool,
    /// Every file is read afresh on each request (static Spaces).
    pub all: bool,
}

/// The strongest action any of the changed paths (absolute, under `root`)
/// calls for.
pub fn classify<'a>(
    root: &Path,
    changed: impl IntoIterator<Item = &'a Path>,
    reloads: Reloads,
) -> Action {
    let mut action = Action::Nothing;
    for path in changed {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() || ignored(rel) {
            continue;
        }
        let this = if rel.to_str().is_some_and(|r| PLAN_FILES.contains(&r)) {
            Action::Replan
        } else if reloads.all || (reloads.python && rel.extension().is_some_and(|e| e == "py")) {
            Action::SdkReloads
        } else {
            Action::Restart
        };
        action = action.max(this);
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn run(paths: &[&str], reloads: Reloads) -> Action {
        let root = PathBuf::from("/space");
        let abs: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
        classify(&root, abs.iter().map(PathBuf::as_path), reloads)
    }

    const GRADIO: Reloads = Reloads {
        python: true,
        all: false,
    };
    const PLAIN: Reloads = Reloads {
        python: false,
        all: false,
    };
    const STATIC: Reloads = Reloads {
        python: false,
        all: true,
    };

    #[test]
    fn code_changes_go_to_the_sdk_reloader_when_there_is_one() {
        assert_eq!(run(&["app.py"], GRADIO), Action::SdkReloads);
        assert_eq!(run(&["lib/util.py"], GRADIO), Action::SdkReloads);
        assert_eq!(run(&["app.py"], PLAIN), Action::Restart);
        assert_eq!(run(&["data/table.csv"], GRADIO), Action::Restart);
        assert_eq!(
            run(&["index.html", "style.css"], STATIC),
            Action::SdkReloads
        );
    }

    #[test]
    fn the_readme_and_dependencies_make_a_new_plan() {
        for f in [
            "README.md",
            "requirements.txt",
            "pre-requirements.txt",
            "packages.txt",
        ] {
            assert_eq!(run(&["app.py", f], GRADIO), Action::Replan, "{f}");
            assert_eq!(run(&[f], STATIC), Action::Replan, "{f}");
        }
        // Only at the top: a nested requirements file is just a file.
        assert_eq!(run(&["docs/README.md"], GRADIO), Action::Restart);
    }

    #[test]
    fn caches_vcs_and_editor_files_are_ignored() {
        for f in [
            ".git/index",
            "__pycache__/app.cpython-311.pyc",
            "pkg/__pycache__/x.pyc",
            ".gradio/certificate.pem",
            "flagged/log.csv",
            ".app.py.swp",
            "app.py~",
            "node_modules/a/b.js",
        ] {
            assert_eq!(run(&[f], PLAIN), Action::Nothing, "{f}");
        }
        assert_eq!(run(&[], PLAIN), Action::Nothing);
        // Paths outside the folder do not count.
        assert_eq!(
            classify(Path::new("/space"), [Path::new("/elsewhere/app.py")], PLAIN),
            Action::Nothing
        );
    }
}
