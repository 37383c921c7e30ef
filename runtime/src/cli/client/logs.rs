//! `spaceport logs`: a Space's run or build log. The hub's stream gives the
//! history, then new lines, and stays open: without `-f` the history is
//! printed once the stream goes quiet; with `-f` lines follow until the
//! stream ends or the command is interrupted.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

use super::http::{LogLine, LogStream, failure};
use super::{Ctx, Done, JsonFlag, space_id};

pub const LOGS_HELP: &str = "Examples:\n  spaceport logs alice/demo\n  spaceport logs alice/demo --build -n 20\n  spaceport logs alice/demo -f\n  spaceport logs alice/demo --json | jq -r .line\n\nJSON: one object per line (JSON Lines), with fields line and timestamp\n(ISO 8601, or null).";

/// How long the stream may stay silent before the history counts as read.
const QUIET: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The Space, as OWNER/NAME.
    #[arg(value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: String,
    /// Keep printing new lines until interrupted (or the log ends).
    #[arg(short, long)]
    pub follow: bool,
    /// The latest build's log instead of the app's.
    #[arg(long)]
    pub build: bool,
    /// Only the last N lines of the history.
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// What one read of the stream gave.
enum Read {
    Line(LogLine),
    Quiet,
    End,
}

async fn read(stream: &mut LogStream, quiet: Duration) -> Result<Read, super::http::ApiError> {
    match tokio::time::timeout(quiet, stream.next()).await {
        Err(_) => Ok(Read::Quiet),
        Ok(Ok(Some(l))) => Ok(Read::Line(l)),
        Ok(Ok(None)) => Ok(Read::End),
        Ok(Err(e)) => Err(e),
    }
}

fn print(ctx: &mut Ctx<'_>, l: &LogLine, as_json: bool) {
    if as_json {
        ctx.out
            .json_line(&json!({ "line": l.line, "timestamp": l.timestamp }));
    } else {
        ctx.out.line(&super::output::clean(&l.line));
        let _ = ctx.out.out.flush();
    }
}

pub async fn logs(ctx: &mut Ctx<'_>, a: LogsArgs) -> Done {
    let api = ctx.api()?;
    let which = if a.build { "build" } else { "run" };
    let mut stream = api
        .log_stream(&format!("/api/spaces/{}/logs/{which}", a.space))
        .await
        .map_err(|e| failure(e, &api, Some(&a.space)))?;
    let as_json = a.json.json;
    // The history: everything until the first quiet moment.
    let keep = a.lines.unwrap_or(usize::MAX);
    let mut history: VecDeque<LogLine> = VecDeque::new();
    let mut ended = false;
    loop {
        match read(&mut stream, QUIET).await {
            Ok(Read::Line(l)) => {
                if keep == 0 {
                    continue;
                }
                if history.len() == keep {
                    history.pop_front();
                }
                history.push_back(l);
            }
            Ok(Read::Quiet) => break,
            Ok(Read::End) => {
                ended = true;
                break;
            }
            Err(e) => return Err(failure(e, &api, Some(&a.space))),
        }
    }
    if history.is_empty() && !a.follow && !as_json {
        ctx.out
            .note(&format!("({} has no {which} log lines yet)", a.space));
    }
    for l in &history {
        print(ctx, l, as_json);
    }
    if !a.follow || ended {
        return Ok(());
    }
    loop {
        match read(&mut stream, Duration::from_secs(3600)).await {
            Ok(Read::Line(l)) => print(ctx, &l, as_json),
            Ok(Read::Quiet) => {}
            Ok(Read::End) => return Ok(()),
            Err(e) => return Err(failure(e, &api, Some(&a.space))),
        }
    }
}
