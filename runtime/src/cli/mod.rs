//! The `spaceport` command line: argument definitions and dispatch.
//!
//! Each subcommand lives in its own module and writes to the writers it is
//! given, so tests can run it without a process. Exit codes are part of the
//! interface: 0 success, 1 the Space is invalid (or, for the client
//! commands, the operation failed), 2 usage error (bad arguments, a path
//! that cannot be read); the client commands add 3 token refused, 4 not
//! found, 5 hub unreachable (see [`client`]).

pub mod cache;
pub mod client;
pub mod dev;
mod output;
pub mod plan;
pub mod serve_static;
pub mod up;
pub mod validate;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code: the Space's configuration or plan is invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: the command was used wrongly or its input cannot be read.
pub const EXIT_USAGE: u8 = 2;

/// spaceport: a self-hosted runtime for Hugging Face-style Spaces.
///
/// A Space is a git repo whose README.md starts with a YAML block saying how
/// to run it (sdk: gradio, streamlit, docker or static). spaceport checks
/// that configuration, builds the Space into an image and runs it.
///
/// `spaceport up` runs the hub; the client commands (login, create, push,
/// logs, ...) talk to a hub over its HTTP API.
#[derive(Debug, Parser)]
#[command(
    name = "spaceport",
    version,
    about,
    long_about,
    propagate_version = true,
    after_help = CLI_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub conn: client::Conn,
}

const CLI_HELP: &str = "Examples:\n  spaceport up\n  spaceport login --url http://127.0.0.1:8080\n  spaceport create alice/demo --sdk gradio\n  spaceport push examples/gradio-hello --space alice/demo\n  spaceport logs alice/demo -f\n\nExit status:\n  0  success\n  1  the Space is invalid, the operation failed, or the Space did not reach RUNNING\n  2  usage error\n  3  the token was refused, or may not do this\n  4  no such Space\n  5  the hub cannot be reached";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a Space's README configuration (and, for a folder, its plan).
    ///
    /// PATH is a README.md or a Space folder. Prints the normalized
    /// configuration, or every error with file:line:column and a hint.
    /// Exit status: 0 valid, 1 invalid, 2 usage error.
    #[command(
        after_help = "Examples:\n  spaceport validate README.md\n  spaceport validate examples/gradio-hello --json"
    )]
    Validate(validate::ValidateArgs),
    /// Print the Dockerfile and run spec spaceport would use for a Space folder.
    ///
    /// Nothing is built or started. Exit status: 0 planned, 1 invalid, 2 usage error.
    #[command(
        after_help = "Examples:\n  spaceport plan examples/gradio-hello\n  spaceport plan . --hardware t4-small --json"
    )]
    Plan(plan::PlanArgs),
    /// Run the hub on this machine: git push to deploy, the Hugging Face
    /// API, every Space at its own URL, idle Spaces asleep.
    ///
    /// One process, one port. State lives under --data-dir and survives
    /// restarts; running Spaces keep running while it is down. The first
    /// start creates the user 'admin' and prints its token (or takes it
    /// from SPACEPORT_ADMIN_TOKEN). Spaces run as Docker containers, or as
    /// local processes where no Docker engine answers (--runner).
    Up(up::UpArgs),
    /// Run a Space from a folder without a build, and apply every change
    /// to it at once (dev mode).
    ///
    /// The SDK's server runs as a local process in a Python environment
    /// made once per set of requirements, behind the same proxy and URLs
    /// as `spaceport up`. gradio and streamlit reload code changes
    /// themselves; other changes restart the app; the README or the
    /// requirements are read again when they change.
    Dev(dev::DevArgs),
    /// Fill or shrink a cache of model and dataset repos in the layout
    /// huggingface_hub reads.
    Cache(cache::CacheArgs),
    /// Serve a folder of static files, as a static Space is served: the
    /// index page at /, the site's 404.html for missing files.
    ///
    /// The image of a static Space on Kubernetes runs this.
    #[command(
        after_help = "Example:\n  spaceport serve-static examples/static-hello --listen 127.0.0.1:8080"
    )]
    ServeStatic(serve_static::ServeStaticArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// Runs a parsed command line against the given output streams.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let color = output::Color::detect();
    match cli.command {
        Command::Validate(args) => validate::run(&args, out, err, color),
        Command::Plan(args) => plan::run(&args, out, err, color),
        Command::Dev(args) => dev::run(&args, err),
        Command::Cache(args) => cache::run(&args, out, err),
        Command::ServeStatic(args) => serve_static::run(&args, err),
        Command::Up(args) => match up::run(&args) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "error: {e:#}");
                1
            }
        },
        Command::Client(cmd) => client::run(cmd, cli.conn, out, err),
    }
}

/// Logs to stderr, filtered by SPACEPORT_LOG (`default` when unset).
fn init_logging(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPACEPORT_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// The whole program: parse the process's arguments, run, exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: `up` logs to stderr from many threads.
    let code = run(cli, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}

/// Where a Space's files come from on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct PathArg {
    /// A README.md, or a folder holding one.
    pub path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
