//! The client half of the command line: commands that talk to a running
//! hub over its HTTP API (and git, for `push`).
//!
//! Each command group has its own module; they share the stored
//! credentials ([`config`]), the HTTP client ([`http`]), the output helpers
//! ([`output`]) and, for `push`, the build progress line ([`progress`]).
//!
//! Exit codes are part of the interface (see [`EXIT_CODES_HELP`]).

pub mod auth;
pub mod config;
pub mod docs;
pub mod http;
pub mod logs;
pub mod output;
pub mod progress;
pub mod push;
pub mod settings;
pub mod spaces;

use std::io::Write;

use clap::Subcommand;

pub use output::Out;

/// Exit code: the operation failed (the hub refused it, or the Space did not
/// come up).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the command was used wrongly (or the hub called the request
/// invalid).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the hub refused the token, or the token may not do this.
pub const EXIT_AUTH: u8 = 3;
/// Exit code: no such Space (or one the token may not see).
pub const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the hub cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 5;

/// The exit codes as the help lists them.
pub const EXIT_CODES_HELP: &str = "Exit status:\n  0  success\n  1  the operation failed (the hub refused it, or the Space did not reach RUNNING)\n  2  usage error (bad arguments, or the hub called the request invalid)\n  3  the token was refused, or may not do this\n  4  no such Space (or one the token may not see)\n  5  the hub cannot be reached";

/// Where the hub is reached when nothing else says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// A failed command: the exit code and one line saying what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(EXIT_FAILED, message)
    }
}

pub type Done = Result<(), Failure>;

/// How to reach the hub: flags first, then the environment, then what
/// `spaceport login` stored, then the default URL.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Conn {
    /// The hub's URL (client commands) [default: the one `spaceport login`
    /// stored, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "SPACEPORT_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An access token for the hub (client commands) [default: the one
    /// `spaceport login` stored for that URL]
    #[arg(
        long,
        global = true,
        env = "SPACEPORT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// `--json` for read commands.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct JsonFlag {
    /// Print JSON instead of text (the fields are listed below).
    #[arg(long)]
    pub json: bool,
}

/// A Space's `OWNER/NAME` on the command line.
pub fn space_id(s: &str) -> Result<String, String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match s.split_once('/') {
        Some((o, n)) if ok_part(o) && ok_part(n) => Ok(s.to_owned()),
        _ => Err(format!(
            "'{s}' is not a Space id: write OWNER/NAME, e.g. alice/my-space"
        )),
    }
}

/// The client commands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Store the hub's URL and an access token for the other commands.
    #[command(after_help = auth::LOGIN_HELP)]
    Login(auth::LoginArgs),
    /// Forget the stored URL and token.
    #[command(after_help = "Examples:\n  spaceport logout")]
    Logout,
    /// Show who the token belongs to.
    #[command(after_help = auth::WHOAMI_HELP)]
    Whoami(JsonFlag),
    /// Create a Space on the hub.
    #[command(after_help = spaces::CREATE_HELP)]
    Create(spaces::CreateArgs),
    /// List the Spaces the token may see.
    #[command(after_help = spaces::LS_HELP)]
    Ls(spaces::LsArgs),
    /// Show a Space: stage, hardware, sleep time, commit, URL.
    #[command(after_help = spaces::INFO_HELP)]
    Info(spaces::SpaceJson),
    /// Print a Space's run or build log.
    #[command(after_help = logs::LOGS_HELP)]
    Logs(logs::LogsArgs),
    /// Restart a Space (lifting a pause); --factory rebuilds without cache.
    #[command(after_help = spaces::RESTART_HELP)]
    Restart(spaces::RestartArgs),
    /// Stop a Space until it is restarted.
    #[command(
        after_help = "Examples:\n  spaceport pause alice/demo\n  spaceport restart alice/demo   # undoes it"
    )]
    Pause(spaces::SpaceArg),
    /// Set, remove or list a Space's secrets (values are write-only).
    #[command(subcommand)]
    Secrets(settings::SecretsCommand),
    /// Set, remove or list a Space's variables.
    #[command(subcommand)]
    Vars(settings::VarsCommand),
    /// Show a Space's hardware and the flavors offered, or change it.
    #[command(after_help = spaces::HARDWARE_HELP)]
    Hardware(spaces::HardwareArgs),
    /// Set how long a Space may idle before it sleeps.
    #[command(after_help = spaces::SLEEP_HELP)]
    Sleep(spaces::SleepArgs),
    /// Print a Space's URL (and open it with --browser).
    #[command(after_help = spaces::OPEN_HELP)]
    Open(spaces::OpenArgs),
    /// Push a folder to a Space and follow its build until it runs.
    #[command(after_help = push::PUSH_HELP)]
    Push(push::PushArgs),
    /// Print a shell completion script.
    #[command(after_help = docs::COMPLETIONS_HELP)]
    Completions(docs::CompletionsArgs),
    /// Write the man pages (or print the main one).
    #[command(after_help = docs::MAN_HELP)]
    Man(docs::ManArgs),
}

/// What every command is given: where the hub is, output streams, colors.
pub struct Ctx<'a> {
    pub conn: Conn,
    pub out: Out<'a>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("url", &self.conn.url).finish()
    }
}

impl Ctx<'_> {
    /// The URL and token to use, after flags, environment and stored login.
    pub fn target(&self) -> Result<(String, Option<String>), Failure> {
        let stored = config::load().map_err(Failure::failed)?;
        let url = self
            .conn
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| stored.as_ref().map(|s| s.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let url = normalize_url(&url)?;
        // A stored token only goes to the hub it was stored for.
        let token = self
            .conn
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                stored
                    .filter(|s| normalize_url(&s.url).is_ok_and(|u| u == url))
                    .map(|s| s.token)
            });
        Ok((url, token))
    }

    /// An API client for the hub.
    pub fn api(&self) -> Result<http::Api, Failure> {
        let (url, token) = self.target()?;
        http::Api::new(&url, token)
    }
}

/// `http(s)://host[:port][/prefix]` without a trailing slash.
pub fn normalize_url(url: &str) -> Result<String, Failure> {
    let u = url.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(u.to_owned()),
        _ => Err(Failure::usage(format!(
            "'{url}' is not a hub URL: give http://HOST:PORT or https://HOST"
        ))),
    }
}

/// Runs a client command; returns the exit code.
pub fn run(cmd: ClientCommand, conn: Conn, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut ctx = Ctx {
        conn,
        out: Out::new(out, err),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.out
                .error(&format!("cannot start the async runtime: {e}"));
            return EXIT_FAILED;
        }
    };
    let result = rt.block_on(dispatch(cmd, &mut ctx));
    match result {
        Ok(()) => 0,
        Err(f) => {
            ctx.out.error(&f.message);
            f.code
        }
    }
}

async fn dispatch(cmd: ClientCommand, ctx: &mut Ctx<'_>) -> Done {
    match cmd {
        ClientCommand::Login(a) => auth::login(ctx, a).await,
        ClientCommand::Logout => auth::logout(ctx),
        ClientCommand::Whoami(j) => auth::whoami(ctx, j.json).await,
        ClientCommand::Create(a) => spaces::create(ctx, a).await,
        ClientCommand::Ls(a) => spaces::ls(ctx, a).await,
        ClientCommand::Info(a) => spaces::info(ctx, a).await,
        ClientCommand::Logs(a) => logs::logs(ctx, a).await,
        ClientCommand::Restart(a) => spaces::restart(ctx, a).await,
        ClientCommand::Pause(a) => spaces::pause(ctx, a).await,
        ClientCommand::Secrets(c) => settings::secrets(ctx, c).await,
        ClientCommand::Vars(c) => settings::vars(ctx, c).await,
        ClientCommand::Hardware(a) => spaces::hardware(ctx, a).await,
        ClientCommand::Sleep(a) => spaces::sleep(ctx, a).await,
        ClientCommand::Open(a) => spaces::open(ctx, a).await,
        ClientCommand::Push(a) => push::push(ctx, a).await,
        ClientCommand::Completions(a) => docs::completions(ctx, a),
        ClientCommand::Man(a) => docs::man(ctx, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_ids_are_owner_slash_name() {
        assert!(space_id("alice/demo").is_ok());
        assert!(space_id("alice").is_err());
        assert!(space_id("alice/").is_err());
        assert!(space_id("a/b/c").is_err());
        assert!(space_id("a b/c").is_err());
    }

    #[test]
    fn urls_lose_their_trailing_slash_and_need_a_scheme() {
        assert_eq!(
            normalize_url("http://h:8080/").unwrap(),
            "http://h:8080".to_string()
        );
        assert!(normalize_url("h:8080").is_err());
        assert!(normalize_url("http://").is_err());
    }
}
