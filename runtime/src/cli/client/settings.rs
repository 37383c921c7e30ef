//! `spaceport secrets` and `spaceport vars`: a Space's secrets (values
//! write-only) and variables. Changing either restarts a running Space.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{s, table};
use super::spaces::space_call;
use super::{Ctx, Done, JsonFlag, space_id};

const SECRETS_HELP: &str = "Secret values are write-only: `ls` shows names, descriptions and times.\nA running Space restarts with the change.\n\nExamples:\n  spaceport secrets set alice/demo HF_TOKEN hf_xxx\n  printf %s \"$KEY\" | spaceport secrets set alice/demo API_KEY -\n  spaceport secrets ls alice/demo --json\n  spaceport secrets rm alice/demo API_KEY\n\nJSON (ls): an array of {key, description, updated_at}.";

const VARS_HELP: &str = "A running Space restarts with the change.\n\nExamples:\n  spaceport vars set alice/demo MODEL_ID gpt2\n  spaceport vars ls alice/demo --json\n  spaceport vars rm alice/demo MODEL_ID\n\nJSON (ls): an array of {key, value, description, updated_at}.";

#[derive(Debug, Subcommand)]
#[command(after_help = SECRETS_HELP)]
pub enum SecretsCommand {
    /// Set a secret (VALUE `-` reads it from stdin).
    #[command(after_help = SECRETS_HELP)]
    Set(SetArgs),
    /// Remove a secret.
    #[command(after_help = SECRETS_HELP)]
    Rm(RmArgs),
    /// List the secrets' names (never their values).
    #[command(after_help = SECRETS_HELP)]
    Ls(LsArgs),
}

#[derive(Debug, Subcommand)]
#[command(after_help = VARS_HELP)]
pub enum VarsCommand {
    /// Set a variable (VALUE `-` reads it from stdin).
    #[command(after_help = VARS_HELP)]
    Set(SetArgs),
    /// Remove a variable.
    #[command(after_help = VARS_HELP)]
    Rm(RmArgs),
    /// List the variables and their values.
    #[command(after_help = VARS_HELP)]
    Ls(LsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// The Space, as OWNER/NAME.
    #[arg(value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: String,
    /// The name, e.g. API_KEY.
    #[arg(value_parser = key_name)]
    pub key: String,
    /// The value; `-` reads it from stdin (keeps it out of the shell history).
    pub value: String,
    /// A description shown in listings.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RmArgs {
    /// The Space, as OWNER/NAME.
    #[arg(value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: String,
    /// The name to remove.
    pub key: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LsArgs {
    /// The Space, as OWNER/NAME.
    #[arg(value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: String,
    #[command(flatten)]
    pub json: JsonFlag,
}

fn key_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not an environment variable name: use letters, digits and _"
        ))
    }
}

/// Which of the two a command is about.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Secret,
    Variable,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Variable => "variables",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Variable => "variable",
        }
    }
}

pub async fn secrets(ctx: &mut Ctx<'_>, cmd: SecretsCommand) -> Done {
    match cmd {
        SecretsCommand::Set(a) => set(ctx, Kind::Secret, a).await,
        SecretsCommand::Rm(a) => rm(ctx, Kind::Secret, a).await,
        SecretsCommand::Ls(a) => ls(ctx, Kind::Secret, a).await,
    }
}

pub async fn vars(ctx: &mut Ctx<'_>, cmd: VarsCommand) -> Done {
    match cmd {
        VarsCommand::Set(a) => set(ctx, Kind::Variable, a).await,
        VarsCommand::Rm(a) => rm(ctx, Kind::Variable, a).await,
        VarsCommand::Ls(a) => ls(ctx, Kind::Variable, a).await,
    }
}

async fn set(ctx: &mut Ctx<'_>, kind: Kind, a: SetArgs) -> Done {
    let value = if a.value == "-" {
        let mut v = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut v)
            .map_err(|e| super::Failure::usage(format!("cannot read the value from stdin: {e}")))?;
        v.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        a.value
    };
    let api = ctx.api()?;
    let mut body = json!({ "key": a.key, "value": value });
    if let Some(d) = &a.description {
        body["description"] = Value::from(d.clone());
    }
    space_call(
        &api,
        &a.space,
        "POST",
        &format!("/api/spaces/{}/{}", a.space, kind.path()),
        Some(&body),
    )
    .await?;
    ctx.out.line(&format!(
        "Set {} {} on {} (a running Space restarts with it)",
        kind.word(),
        a.key,
        a.space
    ));
    Ok(())
}

async fn rm(ctx: &mut Ctx<'_>, kind: Kind, a: RmArgs) -> Done {
    let api = ctx.api()?;
    space_call(
        &api,
        &a.space,
        "DELETE",
        &format!("/api/spaces/{}/{}", a.space, kind.path()),
        Some(&json!({ "key": a.key })),
    )
    .await?;
    ctx.out.line(&format!(
        "Removed {} {} from {}",
        kind.word(),
        a.key,
        a.space
    ));
    Ok(())
}

async fn ls(ctx: &mut Ctx<'_>, kind: Kind, a: LsArgs) -> Done {
    let api = ctx.api()?;
    let map = space_call(
        &api,
        &a.space,
        "GET",
        &format!("/api/spaces/{}/{}", a.space, kind.path()),
        None,
    )
    .await?;
    let items: Vec<Value> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let mut item = json!({
                        "key": k,
                        "description": v["description"],
                        "updated_at": v["updatedAt"],
                    });
                    if let Kind::Variable = kind {
                        item["value"] = v["value"].clone();
                    }
                    item
                })
                .collect()
        })
        .unwrap_or_default();
    if a.json.json {
        ctx.out.json(&Value::Array(items));
        return Ok(());
    }
    if items.is_empty() {
        ctx.out.note(&format!("{} has no {}", a.space, kind.path()));
        return Ok(());
    }
    let mut rows = vec![match kind {
        Kind::Secret => vec!["KEY".to_owned(), "UPDATED".into(), "DESCRIPTION".into()],
        Kind::Variable => vec![
            "KEY".to_owned(),
            "VALUE".into(),
            "UPDATED".into(),
            "DESCRIPTION".into(),
        ],
    }];
    for i in &items {
        let mut row = vec![s(i, "key").to_owned()];
        if let Kind::Variable = kind {
            row.push(s(i, "value").to_owned());
        }
        row.push(s(i, "updated_at").to_owned());
        row.push(s(i, "description").to_owned());
        rows.push(row);
    }
    for line in table(&rows) {
        ctx.out.line(line.trim_end());
    }
    Ok(())
}
