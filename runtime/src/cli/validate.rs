//! `spaceport validate PATH [--json]`.

use super::output::{self, Color};
use super::{EXIT_INVALID, EXIT_USAGE};
use crate::config::{ParsedReadme, emit, parse_readme};
use crate::folder::{self, FolderError};
use crate::hardware::FlavorCatalog;
use crate::plan::{self, BuildPlan, Plan, PlanError, PlanSettings, SpaceContext, SpaceId};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// A README.md, or a Space folder holding one.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub plan: PlanOptions,
}

/// Options that shape the plan of a folder.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanOptions {
    /// The Space's id (owner/name); by default local/<folder name>.
    #[arg(long)]
    pub id: Option<String>,
    /// Plan for this hardware flavor instead of the default.
    #[arg(long)]
    pub hardware: Option<String>,
    /// A YAML file of hardware flavors extending the built-in ones.
    #[arg(long, env = "SPACEPORT_FLAVORS")]
    pub flavors: Option<PathBuf>,
    /// Domain under which Spaces are served (owner-name.DOMAIN).
    #[arg(long, env = "SPACEPORT_DOMAIN", default_value = "localhost")]
    pub domain: String,
}

/// A Space read from the command line's path.
pub(super) struct Loaded {
    pub file: String,
    pub parsed: ParsedReadme,
    /// Present when the path was a folder and the configuration is valid.
    pub plan: Option<Result<Plan, PlanError>>,
}

/// Failure to even read the input: a usage error, exit 2.
pub(super) struct Unreadable(pub String);

pub(super) fn load(path: &Path, options: &PlanOptions) -> Result<Loaded, Unreadable> {
    if !path.exists() {
        return Err(Unreadable(format!("{} does not exist", path.display())));
    }
    let catalog = match &options.flavors {
        Some(file) => FlavorCatalog::from_file(file).map_err(|e| Unreadable(e.to_string()))?,
        None => FlavorCatalog::builtin(),
    };
    if !path.is_dir() {
        let bytes = folder::read_readme(path).map_err(|e| Unreadable(e.to_string()))?;
        return Ok(Loaded {
            file: path.display().to_string(),
            parsed: parse_readme(&bytes),
            plan: None,
        });
    }
    let file = path.join("README.md").display().to_string();
    let space = match folder::read(path) {
        Ok(space) => space,
        Err(FolderError::NoReadme { .. }) => {
            return Ok(Loaded {
                file: file.clone(),
                parsed: parse_readme(b""),
                plan: None,
            });
        }
        Err(e) => return Err(Unreadable(e.to_string())),
    };
    let parsed = parse_readme(&space.readme);
    let plan = match &parsed.config {
        Some(config) => {
            let id = match &options.id {
                Some(id) => SpaceId::parse(id).map_err(|e| Unreadable(format!("--id: {e}")))?,
                None => default_id(path),
            };
            let mut context = SpaceContext::new(id);
            context.hardware = options.hardware.clone();
            let settings = PlanSettings {
                domain: options.domain.clone(),
                ..PlanSettings::default()
            };
            Some(plan::plan(
                config,
                &space.files,
                &context,
                &catalog,
                &settings,
            ))
        }
        None => None,
    };
    Ok(Loaded { file, parsed, plan })
}

/// `local/<folder name>`, made into a valid repo name.
fn default_id(path: &Path) -> SpaceId {
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while clean.contains("--") {
        clean = clean.replace("--", "-");
    }
    let clean = clean.trim_matches('-');
    SpaceId::parse(&format!("local/{clean}"))
        .unwrap_or_else(|_| SpaceId::parse("local/space").expect("a valid id"))
}

pub fn run(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write, color: Color) -> u8 {
    let loaded = match load(&args.path, &args.plan) {
        Ok(l) => l,
        Err(Unreadable(msg)) => {
            let _ = writeln!(err, "error: {msg}");
            return EXIT_USAGE;
        }
    };
    let plan_error = loaded.plan.as_ref().and_then(|p| p.as_ref().err());
    let valid = loaded.parsed.is_valid() && plan_error.is_none();
    let stage = if !loaded.parsed.is_valid() {
        Some("CONFIG_ERROR".to_owned())
    } else {
        plan_error.map(|e| e.stage().to_string())
    };
    if args.json {
        let plan = loaded
            .plan
            .as_ref()
            .and_then(|p| p.as_ref().ok())
            .map(plan_summary);
        output::json(
            out,
            &json!({
                "file": loaded.file,
                "valid": valid,
                "stage": stage,
                "config": loaded.parsed.config,
                "diagnostics": loaded.parsed.diagnostics,
                "plan": plan,
                "plan_error": plan_error.map(ToString::to_string),
            }),
        );
    } else {
        output::diagnostics(err, &loaded.file, &loaded.parsed.diagnostics, color);
        if let Some(config) = &loaded.parsed.config {
            let _ = writeln!(out, "# {}: a valid {} Space", loaded.file, config.sdk);
            let _ = write!(out, "{}", emit::to_front_matter(config));
        }
        match &loaded.plan {
            Some(Ok(plan)) => print_plan_summary(out, plan),
            Some(Err(e)) => {
                let _ = writeln!(err, "{}: error[{}]: {e}", loaded.file, e.stage());
            }
            None => {}
        }
        if !valid {
            let n = loaded.parsed.errors().count() + usize::from(plan_error.is_some());
            let _ = writeln!(
                err,
                "{}: invalid ({n} error{})",
                loaded.file,
                if n == 1 { "" } else { "s" }
            );
        }
    }
    if valid { 0 } else { EXIT_INVALID }
}

/// The plan in a few fields, for `validate`; `plan` prints all of it.
pub(super) fn plan_summary(plan: &Plan) -> serde_json::Value {
    let build = match &plan.build {
        BuildPlan::Image(i) if i.generated => "generated Dockerfile",
        BuildPlan::Image(_) => "the repository's Dockerfile",
        BuildPlan::Static(s) if s.build.is_some() => "static files, after a build command",
        BuildPlan::Static(_) => "static files, no image",
    };
    let r = &plan.run.resources;
    json!({
        "build": build,
        "port": plan.run.port,
        "flavor": r.flavor,
        "cpu_millis": r.cpu_millis,
        "memory_bytes": r.memory_bytes,
        "gpus": r.gpus,
        "volumes": plan.run.volumes.iter().map(|v| &v.target).collect::<Vec<_>>(),
        "startup_timeout_secs": plan.run.startup_timeout_secs,
        "embeddable_anywhere": plan.run.headers.embeddable_anywhere,
        "warnings": plan.warnings,
    })
}

fn print_plan_summary(out: &mut dyn Write, plan: &Plan) {
    let s = plan_summary(plan);
    let _ = writeln!(out, "# plan");
    let _ = writeln!(out, "build:   {}", s["build"].as_str().unwrap_or_default());
    if let Some(port) = plan.run.port {
        let _ = writeln!(out, "port:    {port}");
    }
    let r = &plan.run.resources;
    let _ = writeln!(
        out,
        "flavor:  {} ({} CPU, {} GB, {} GPU)",
        r.flavor,
        r.cpu_millis as f64 / 1000.0,
        r.memory_bytes as f64 / 1e9,
        r.gpus
    );
    for v in &plan.run.volumes {
        let mode = if v.read_only { "ro" } else { "rw" };
        let _ = writeln!(out, "volume:  {} ({mode})", v.target);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}
