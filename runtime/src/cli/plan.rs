//! `spaceport plan FOLDER [--json]`: the Dockerfile and run spec of a Space.

use super::output::{self, Color};
use super::validate::{PlanOptions, Unreadable, load};
use super::{EXIT_INVALID, EXIT_USAGE};
use crate::plan::BuildPlan;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The Space folder (holding README.md and the app).
    pub folder: PathBuf,
    /// Print one JSON object (build plan and run spec) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub plan: PlanOptions,
}

pub fn run(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write, color: Color) -> u8 {
    if !args.folder.is_dir() {
        let _ = writeln!(
            err,
            "error: {} is not a folder; `spaceport plan` needs a Space folder",
            args.folder.display()
        );
        return EXIT_USAGE;
    }
    let loaded = match load(&args.folder, &args.plan) {
        Ok(l) => l,
        Err(Unreadable(msg)) => {
            let _ = writeln!(err, "error: {msg}");
            return EXIT_USAGE;
        }
    };
    output::diagnostics(err, &loaded.file, &loaded.parsed.diagnostics, color);
    let plan = match loaded.plan {
        Some(Ok(plan)) => plan,
        Some(Err(e)) => {
            let _ = writeln!(err, "{}: error[{}]: {e}", loaded.file, e.stage());
            return EXIT_INVALID;
        }
        None => {
            let _ = writeln!(
                err,
                "{}: invalid configuration, nothing to plan",
                loaded.file
            );
            return EXIT_INVALID;
        }
    };
    if args.json {
        output::json(
            out,
            &json!({ "build": plan.build, "run": plan.run, "warnings": plan.warnings }),
        );
        return 0;
    }
    match &plan.build {
        BuildPlan::Image(image) => {
            let what = if image.generated {
                "generated"
            } else {
                "from the repository"
            };
            let _ = writeln!(out, "# Dockerfile ({what})");
            let _ = write!(out, "{}", image.dockerfile);
            if !image.build_args.is_empty() {
                let names: Vec<&str> = image.build_args.keys().map(String::as_str).collect();
                let _ = writeln!(out, "# build args: {}", names.join(", "));
            }
            if !image.build_secrets.is_empty() {
                let _ = writeln!(out, "# build secrets: {}", image.build_secrets.join(", "));
            }
        }
        BuildPlan::Static(site) => {
            let root = if site.root.is_empty() {
                "."
            } else {
                &site.root
            };
            let _ = writeln!(
                out,
                "# static site: {root}/{} served by spaceport",
                site.index
            );
            if let Some(build) = &site.build {
                let _ = writeln!(out, "# build Dockerfile (generated)");
                let _ = write!(out, "{}", build.dockerfile);
            }
        }
    }
    let _ = writeln!(out, "\n# run spec");
    let spec = serde_norway::to_string(&plan.run).unwrap_or_default();
    let _ = write!(out, "{spec}");
    for w in &plan.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    0
}
