//! Commands about one Space or the list of them: create, ls, info,
//! restart, pause, hardware, sleep, open.

use serde_json::{Value, json};

use super::http::{Api, failure};
use super::output::{s, stage_color, table};
use super::{Ctx, Done, Failure, JsonFlag, space_id};

pub const CREATE_HELP: &str = "Examples:\n  spaceport create alice/demo --sdk gradio\n  spaceport create my-org/tool --sdk docker --private --hardware cpu-upgrade\n\nThen push code to it: spaceport push . --space alice/demo";

pub const LS_HELP: &str = "Examples:\n  spaceport ls\n  spaceport ls --owner my-org --json\n\nJSON: an array of objects with id, owner, sdk, private, stage, hardware\n(the flavor in use, or null), sha (the commit serving, or null), url.";

pub const INFO_HELP: &str = "Examples:\n  spaceport info alice/demo\n  spaceport info alice/demo --json | jq -r .stage\n\nJSON fields: id, owner, sdk, private, stage, message (why the stage, or\nnull), hardware {current, requested}, sleep_seconds (-1 or null: never),\nsha, url, created_at, files (paths in the repo).";

pub const RESTART_HELP: &str = "Examples:\n  spaceport restart alice/demo\n  spaceport restart alice/demo --factory   # rebuild without the build cache";

pub const HARDWARE_HELP: &str = "Without FLAVOR, shows the Space's hardware and the flavors this hub\noffers; with FLAVOR, moves the Space to it (a running Space restarts).\n\nExamples:\n  spaceport hardware alice/demo\n  spaceport hardware alice/demo t4-small\n\nJSON fields: space, current (flavor in use, or null), requested,\navailable (array of {name, cpu, ram, gpu}; gpu is null or a description).";

pub const SLEEP_HELP: &str = "Examples:\n  spaceport sleep alice/demo 3600    # sleep after an idle hour\n  spaceport sleep alice/demo never";

pub const OPEN_HELP: &str = "Examples:\n  spaceport open alice/demo\n  spaceport open alice/demo --browser\n\nJSON fields: space, url.";

/// A Space, as the only argument.
#[derive(Debug, Clone, clap::Args)]
pub struct SpaceArg {
    /// The Space, as OWNER/NAME.
    #[arg(value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: String,
}

/// A Space and `--json`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpaceJson {
    #[command(flatten)]
    pub space: SpaceArg,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub space: SpaceArg,
    /// How the Space runs.
    #[arg(long, value_parser = ["gradio", "streamlit", "docker", "static"])]
    pub sdk: String,
    /// Only its owners may see it.
    #[arg(long)]
    pub private: bool,
    /// The hardware flavor (`spaceport hardware OWNER/NAME` lists them).
    #[arg(long, value_name = "FLAVOR")]
    pub hardware: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LsArgs {
    /// Only the Spaces of this user or organization.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub space: SpaceArg,
    /// Rebuild from scratch, without the build cache.
    #[arg(long)]
    pub factory: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HardwareArgs {
    #[command(flatten)]
    pub space: SpaceArg,
    /// The flavor to move the Space to.
    pub flavor: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SleepArgs {
    #[command(flatten)]
    pub space: SpaceArg,
    /// Idle seconds before the Space sleeps, or `never`.
    #[arg(value_parser = sleep_seconds, value_name = "SECONDS|never")]
    pub seconds: i64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub space: SpaceArg,
    /// Also open it in a browser (when a display is available).
    #[arg(long)]
    pub browser: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

fn sleep_seconds(s: &str) -> Result<i64, String> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(-1);
    }
    match s.parse::<i64>() {
        Ok(n) if n > 0 || n == -1 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a sleep time: give seconds above 0, or `never`"
        )),
    }
}

/// Percent-encodes a query value.
pub fn query_value(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A call about one Space; errors name it.
pub async fn space_call(
    api: &Api,
    space: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    api.call(method, path, body)
        .await
        .map_err(|e| failure(e, api, Some(space)))
}

pub async fn create(ctx: &mut Ctx<'_>, a: CreateArgs) -> Done {
    let api = ctx.api()?;
    let (owner, name) = a.space.space.split_once('/').unwrap_or_default();
    let mut body = json!({
        "type": "space",
        "name": name,
        "organization": owner,
        "private": a.private,
        "sdk": a.sdk,
    });
    if let Some(h) = &a.hardware {
        body["hardware"] = Value::from(h.clone());
    }
    let answer = api
        .call("POST", "/api/repos/create", Some(&body))
        .await
        .map_err(|e| match failure(e, &api, None) {
            f if f.message.contains("409") => Failure::failed(format!(
                "{} already exists; `spaceport info {}` shows it",
                a.space.space, a.space.space
            )),
            f => f,
        })?;
    ctx.out.line(&format!(
        "Created {} ({}{}): push code with `spaceport push FOLDER --space {}`",
        a.space.space,
        a.sdk,
        if a.private { ", private" } else { "" },
        a.space.space
    ));
    let url = s(&answer, "url");
    if !url.is_empty() {
        ctx.out.line(&format!("git remote: {url}"));
    }
    Ok(())
}

/// The fields `ls --json` promises, from a list entry.
fn summary(v: &Value) -> Value {
    let rt = &v["runtime"];
    json!({
        "id": s(v, "id"),
        "owner": s(v, "author"),
        "sdk": v["sdk"],
        "private": v["private"].as_bool().unwrap_or(false),
        "stage": rt["stage"],
        "hardware": rt["hardware"]["current"],
        "sha": rt["sha"],
        "url": v["host"],
    })
}

pub async fn ls(ctx: &mut Ctx<'_>, a: LsArgs) -> Done {
    let api = ctx.api()?;
    let path = match &a.owner {
        Some(o) => format!("/api/spaces?author={}", query_value(o)),
        None => "/api/spaces".to_owned(),
    };
    let list = api.get(&path).await.map_err(|e| failure(e, &api, None))?;
    let items: Vec<Value> = list
        .as_array()
        .map(|l| l.iter().map(summary).collect())
        .unwrap_or_default();
    if a.json.json {
        ctx.out.json(&Value::Array(items));
        return Ok(());
    }
    if items.is_empty() {
        ctx.out.note(&format!(
            "No Spaces on {}; `spaceport create OWNER/NAME --sdk ...` makes one",
            api.base
        ));
        return Ok(());
    }
    let mut rows = vec![vec![
        "SPACE".to_owned(),
        "SDK".into(),
        "STAGE".into(),
        "HARDWARE".into(),
        "URL".into(),
    ]];
    for i in &items {
        let private = if i["private"] == Value::Bool(true) {
            " (private)"
        } else {
            ""
        };
        rows.push(vec![
            format!("{}{private}", s(i, "id")),
            s(i, "sdk").to_owned(),
            s(i, "stage").to_owned(),
            i["hardware"].as_str().unwrap_or("-").to_owned(),
            s(i, "url").to_owned(),
        ]);
    }
    for line in table(&rows) {
        ctx.out.line(&line);
    }
    Ok(())
}

/// The Space's info and runtime.
async fn fetch(api: &Api, space: &str) -> Result<(Value, Value), Failure> {
    let info = space_call(api, space, "GET", &format!("/api/spaces/{space}"), None).await?;
    let rt = space_call(
        api,
        space,
        "GET",
        &format!("/api/spaces/{space}/runtime"),
        None,
    )
    .await?;
    Ok((info, rt))
}

pub async fn info(ctx: &mut Ctx<'_>, a: SpaceJson) -> Done {
    let api = ctx.api()?;
    let space = &a.space.space;
    let (info, rt) = fetch(&api, space).await?;
    let files: Vec<Value> = info["siblings"]
        .as_array()
        .map(|l| l.iter().map(|f| f["rfilename"].clone()).collect())
        .unwrap_or_default();
    let doc = json!({
        "id": s(&info, "id"),
        "owner": s(&info, "author"),
        "sdk": info["sdk"],
        "private": info["private"].as_bool().unwrap_or(false),
        "stage": rt["stage"],
        "message": rt["errorMessage"],
        "hardware": {
            "current": rt["hardware"]["current"],
            "requested": rt["hardware"]["requested"],
        },
        "sleep_seconds": rt["gcTimeout"],
        "sha": rt["sha"],
        "url": info["host"],
        "created_at": info["createdAt"],
        "files": files,
    });
    if a.json.json {
        ctx.out.json(&doc);
        return Ok(());
    }
    print_info(ctx, &doc);
    Ok(())
}

fn print_info(ctx: &mut Ctx<'_>, d: &Value) {
    let stage = s(d, "stage");
    let private = if d["private"] == Value::Bool(true) {
        " (private)"
    } else {
        ""
    };
    ctx.out
        .line(&format!("{}{private}", ctx.out.paint("1", s(d, "id"))));
    let mut rows: Vec<Vec<String>> = vec![vec![
        "  stage".into(),
        ctx.out.paint(stage_color(stage), stage),
    ]];
    if let Some(m) = d["message"].as_str() {
        rows.push(vec![
            "  message".into(),
            m.trim_end().replace('\n', "\n            "),
        ]);
    }
    rows.push(vec!["  sdk".into(), s(d, "sdk").to_owned()]);
    let current = d["hardware"]["current"].as_str().unwrap_or("-");
    let requested = d["hardware"]["requested"].as_str().unwrap_or("-");
    rows.push(vec![
        "  hardware".into(),
        if current == requested {
            current.to_owned()
        } else {
            format!("{current} (requested {requested})")
        },
    ]);
    rows.push(vec![
        "  sleeps".into(),
        match d["sleep_seconds"].as_i64() {
            Some(n) if n > 0 => format!("after {n} s idle"),
            _ => "never".to_owned(),
        },
    ]);
    rows.push(vec![
        "  commit".into(),
        d["sha"].as_str().unwrap_or("-").to_owned(),
    ]);
    rows.push(vec!["  url".into(), s(d, "url").to_owned()]);
    for line in table(&rows) {
        ctx.out.line(&line);
    }
}

pub async fn restart(ctx: &mut Ctx<'_>, a: RestartArgs) -> Done {
    let api = ctx.api()?;
    let space = &a.space.space;
    let q = if a.factory { "?factory=true" } else { "" };
    let rt = space_call(
        &api,
        space,
        "POST",
        &format!("/api/spaces/{space}/restart{q}"),
        None,
    )
    .await?;
    ctx.out.line(&format!(
        "{} {space}; it is {} now (`spaceport logs {space} --build -f` follows it)",
        if a.factory {
            "Rebuilding from scratch"
        } else {
            "Restarting"
        },
        s(&rt, "stage")
    ));
    Ok(())
}

pub async fn pause(ctx: &mut Ctx<'_>, a: SpaceArg) -> Done {
    let api = ctx.api()?;
    let space = &a.space;
    let rt = space_call(
        &api,
        space,
        "POST",
        &format!("/api/spaces/{space}/pause"),
        None,
    )
    .await?;
    ctx.out.line(&format!(
        "Paused {space} ({}); `spaceport restart {space}` starts it again",
        s(&rt, "stage")
    ));
    Ok(())
}

/// The fields `hardware --json` promises.
fn hardware_doc(space: &str, rt: &Value, flavors: &Value) -> Value {
    let available: Vec<Value> = flavors
        .as_array()
        .map(|l| {
            l.iter()
                .map(|f| {
                    let gpu = f["accelerator"].as_object().map(|a| {
                        format!(
                            "{} x {} {}",
                            a.get("quantity").and_then(Value::as_str).unwrap_or("1"),
                            a.get("model").and_then(Value::as_str).unwrap_or("gpu"),
                            a.get("vram").and_then(Value::as_str).unwrap_or_default()
                        )
                        .trim()
                        .to_owned()
                    });
                    json!({
                        "name": s(f, "name"),
                        "cpu": s(f, "cpu"),
                        "ram": s(f, "ram"),
                        "gpu": gpu,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "space": space,
        "current": rt["hardware"]["current"],
        "requested": rt["hardware"]["requested"],
        "available": available,
    })
}

pub async fn hardware(ctx: &mut Ctx<'_>, a: HardwareArgs) -> Done {
    let api = ctx.api()?;
    let space = &a.space.space;
    let rt = match &a.flavor {
        Some(f) => {
            space_call(
                &api,
                space,
                "POST",
                &format!("/api/spaces/{space}/hardware"),
                Some(&json!({ "flavor": f })),
            )
            .await?
        }
        None => {
            space_call(
                &api,
                space,
                "GET",
                &format!("/api/spaces/{space}/runtime"),
                None,
            )
            .await?
        }
    };
    let flavors = api
        .get("/api/spaces/hardware")
        .await
        .map_err(|e| failure(e, &api, None))?;
    let doc = hardware_doc(space, &rt, &flavors);
    if a.json.json {
        ctx.out.json(&doc);
        return Ok(());
    }
    if let Some(f) = &a.flavor {
        ctx.out.line(&format!(
            "{space} now asks for {f} (it restarts on it if it was running)"
        ));
        return Ok(());
    }
    let current = doc["current"].as_str().unwrap_or("-").to_owned();
    let requested = s(&doc, "requested").to_owned();
    ctx.out
        .line(&format!("{space}: {current} in use, {requested} requested"));
    let mut rows = vec![vec![
        "  FLAVOR".to_owned(),
        "CPU".into(),
        "RAM".into(),
        "GPU".into(),
    ]];
    for f in doc["available"].as_array().into_iter().flatten() {
        let mark = if s(f, "name") == requested { "*" } else { " " };
        rows.push(vec![
            format!("{mark} {}", s(f, "name")),
            s(f, "cpu").to_owned(),
            s(f, "ram").to_owned(),
            f["gpu"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    for line in table(&rows) {
        ctx.out.line(&line);
    }
    Ok(())
}

pub async fn sleep(ctx: &mut Ctx<'_>, a: SleepArgs) -> Done {
    let api = ctx.api()?;
    let space = &a.space.space;
    space_call(
        &api,
        space,
        "POST",
        &format!("/api/spaces/{space}/sleeptime"),
        Some(&json!({ "seconds": a.seconds })),
    )
    .await?;
    if a.seconds < 0 {
        ctx.out.line(&format!("{space} never sleeps now"));
    } else {
        ctx.out.line(&format!(
            "{space} sleeps after {} s without requests",
            a.seconds
        ));
    }
    Ok(())
}

pub async fn open(ctx: &mut Ctx<'_>, a: OpenArgs) -> Done {
    let api = ctx.api()?;
    let space = &a.space.space;
    let info = space_call(&api, space, "GET", &format!("/api/spaces/{space}"), None).await?;
    let url = s(&info, "host").to_owned();
    if url.is_empty() {
        return Err(Failure::failed(format!(
            "the hub did not say where {space} is served"
        )));
    }
    if a.json.json {
        ctx.out.json(&json!({ "space": space, "url": url }));
    } else {
        ctx.out.line(&url);
    }
    if a.browser {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
        if !display {
            ctx.out
                .note("note: no display (DISPLAY / WAYLAND_DISPLAY unset): open the URL yourself");
            return Ok(());
        }
        let opened = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !opened {
            ctx.out.note("note: xdg-open failed: open the URL yourself");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_takes_seconds_or_never() {
        assert_eq!(sleep_seconds("never"), Ok(-1));
        assert_eq!(sleep_seconds("60"), Ok(60));
        assert!(sleep_seconds("0").is_err());
        assert!(sleep_seconds("soon").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }
}
