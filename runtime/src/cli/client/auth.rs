//! `spaceport login`, `logout` and `whoami`.

use std::io::{BufRead, IsTerminal};

use serde_json::{Value, json};

use super::http::{Api, failure};
use super::output::s;
use super::{Ctx, DEFAULT_URL, Done, Failure, config, normalize_url};

pub const LOGIN_HELP: &str = "The token is checked with the hub, then the URL and token are stored in\n$XDG_CONFIG_HOME/spaceport/credentials.json (else ~/.config/spaceport/),\nreadable by you alone. Without --token it is read from stdin (a prompt on a\nterminal). SPACEPORT_URL and SPACEPORT_TOKEN (or --url and --token) override\nthe stored login for any command, so scripts need no login.\n\nExamples:\n  spaceport login --url http://127.0.0.1:8080\n  echo \"$TOKEN\" | spaceport login --url https://spaces.example.org\n  spaceport login --token hf_xxx\n\nExit status: 0 stored, 3 the token was refused, 5 the hub cannot be reached.";

pub const WHOAMI_HELP: &str = "Examples:\n  spaceport whoami\n  spaceport whoami --json\n\nJSON fields: name, fullname, is_admin, orgs (names), token_role, url.";

#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {}

pub async fn login(ctx: &mut Ctx<'_>, _args: LoginArgs) -> Done {
    let url = normalize_url(ctx.conn.url.as_deref().unwrap_or(DEFAULT_URL))?;
    let token = match ctx.conn.token.clone().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => read_token(ctx)?,
    };
    let api = Api::new(&url, Some(token.clone()))?;
    let who = api
        .get("/api/whoami-v2")
        .await
        .map_err(|e| failure(e, &api, None))?;
    let path = config::save(&config::Stored {
        url: url.clone(),
        token,
    })
    .map_err(Failure::failed)?;
    ctx.out.line(&format!(
        "Logged in to {url} as {}; the token is stored in {}",
        s(&who, "name"),
        path.display()
    ));
    Ok(())
}

/// The token from stdin: a hidden prompt on a terminal, else the first line.
fn read_token(ctx: &mut Ctx<'_>) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        ctx.out
            .note("Paste an access token (from `spaceport up`'s first start, or an admin):");
        let _ = std::io::Write::write_all(ctx.out.err, b"Token: ");
        let _ = std::io::Write::flush(ctx.out.err);
    }
    let echo_off = tty && stty(&["-echo"]);
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        stty(&["echo"]);
        ctx.out.note("");
    }
    read.map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        return Err(Failure::usage(
            "no token given; pass --token TOKEN, or write it to stdin",
        ));
    }
    Ok(token)
}

/// Runs `stty` on the terminal; whether it worked.
fn stty(args: &[&str]) -> bool {
    std::process::Command::new("stty")
        .args(args)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn logout(ctx: &mut Ctx<'_>) -> Done {
    match config::remove().map_err(Failure::failed)? {
        Some(path) => ctx
            .out
            .line(&format!("Logged out: removed {}", path.display())),
        None => ctx.out.line("Not logged in: nothing to remove"),
    }
    Ok(())
}

pub async fn whoami(ctx: &mut Ctx<'_>, as_json: bool) -> Done {
    let api = ctx.api()?;
    let who = api
        .get("/api/whoami-v2")
        .await
        .map_err(|e| failure(e, &api, None))?;
    let orgs: Vec<String> = who["orgs"]
        .as_array()
        .map(|a| a.iter().map(|o| s(o, "name").to_owned()).collect())
        .unwrap_or_default();
    let role = who["auth"]["accessToken"]["role"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if as_json {
        ctx.out.json(&json!({
            "name": s(&who, "name"),
            "fullname": s(&who, "fullname"),
            "is_admin": who["isAdmin"].as_bool().unwrap_or(false),
            "orgs": orgs,
            "token_role": role,
            "url": api.base,
        }));
        return Ok(());
    }
    let admin = if who["isAdmin"] == Value::Bool(true) {
        " (admin)"
    } else {
        ""
    };
    ctx.out
        .line(&format!("{}{admin} on {}", s(&who, "name"), api.base));
    if !orgs.is_empty() {
        ctx.out.line(&format!("orgs: {}", orgs.join(", ")));
    }
    if !role.is_empty() {
        ctx.out.line(&format!("token: {role}"));
    }
    Ok(())
}
