//! A Space's page (the app in a frame or why it is not running, the live
//! stage, the logs, the embed snippets, the model and dataset repos it
//! uses) and its settings page. Pure: the handler gathers a [`SpaceData`],
//! these functions turn it into markup, escaping every value.

use std::fmt::Write as _;

use spaceport_proxy::pages::escape as esc;

use super::layout::{badge, csrf_field};

/// A model or dataset repo a Space uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoUse {
    /// `models` or `datasets`.
    pub kind: &'static str,
    pub id: String,
    /// Files and bytes at the head of main, when the repo is on this hub.
    pub on_hub: Option<(usize, u64)>,
    /// Where the Space finds it (`HF_HUB_CACHE/...`).
    pub mount: String,
    /// Bytes of it in this node's cache (`None`: not cached yet).
    pub cached: Option<u64>,
}

/// What a Space's page shows.
#[derive(Debug, Clone, Default)]
pub struct SpaceData {
    pub id: String,
    pub title: String,
    pub emoji: String,
    pub color_from: Option<String>,
    pub color_to: Option<String>,
    pub short_description: Option<String>,
    pub sdk: Option<String>,
    pub sdk_version: Option<String>,
    pub stage: String,
    pub message: Option<String>,
    pub hardware: String,
    pub visibility: String,
    /// The app at its own host (for links and embedding elsewhere).
    pub app_url: String,
    /// Where this page frames the app (and links to it): its own host, or
    /// for a private Space the hub's `/apps/` path.
    pub frame_url: String,
    /// The git URL.
    pub git_url: String,
    pub embedding_disabled: bool,
    /// May the viewer change this Space (and read its logs)?
    pub owner: bool,
    pub signed_in: bool,
    pub build_log: Vec<String>,
    pub run_log: Vec<String>,
    pub repos: Vec<RepoUse>,
    /// What filling the cache took at the last start: files, bytes
    /// downloaded, bytes found cached, seconds.
    pub last_fill: Option<(usize, u64, u64, f64)>,
}

/// Whether the app frame is shown for a stage: running, or asleep (the
/// frame's request wakes it).
pub fn shows_app(stage: &str) -> bool {
    matches!(
        stage,
        "RUNNING" | "SLEEPING" | "RUNNING_BUILDING" | "RUNNING_APP_STARTING"
    )
}

/// What to do about a stage in which the app does not show.
pub fn advice(stage: &str, owner: bool) -> &'static str {
    match (stage, owner) {
        ("BUILDING" | "APP_STARTING", _) => {
            "It is being prepared; this page follows the stage and shows the app when it runs."
        }
        ("PAUSED", true) => "Its owner paused it. Restart it in Settings to run it again.",
        ("PAUSED", false) => "Its owner paused it.",
        ("BUILD_ERROR", true) => {
            "The build failed: read the build log below, fix the repo and push again."
        }
        ("RUNTIME_ERROR", true) => {
            "The app stopped with an error: read the run log below, fix it and push, or restart it."
        }
        ("CONFIG_ERROR", true) => {
            "The README's configuration is invalid: fix the line named above and push again."
        }
        ("NO_APP_FILE", true) => "Push a README.md with its configuration and the app's files.",
        ("STOPPED", true) => "It is stopped. Restart it in Settings.",
        (_, false) => "Its owner can see why in its logs.",
        _ => "See the logs below.",
    }
}

/// The top of every page of a Space: emoji, title, live stage, tabs.
pub fn render_head(d: &SpaceData, tab: &str) -> String {
    let mut h = format!(
        "<div class=\"spacehead\" data-events=\"/spaces/{}/live\"><span class=\"emoji\" aria-hidden=\"true\">{}</span><h1>{}</h1>{}</div>",
        esc(&d.id),
        esc(&d.emoji),
        esc(&d.title),
        badge(&d.stage, true, tab == "app"),
    );
    let _ = write!(
        h,
        "<p class=\"muted\">{} &middot; {} &middot; {} &middot; {}</p>",
        esc(&d.id),
        esc(d.sdk.as_deref().unwrap_or("no sdk yet")),
        esc(&d.hardware),
        esc(&d.visibility)
    );
    if let Some(desc) = &d.short_description {
        let _ = write!(h, "<p>{}</p>", esc(desc));
    }
    let tabs: &[(&str, &str, &str)] = if d.owner {
        &[
            ("app", "", "App"),
            ("settings", "/settings", "Settings"),
            ("analytics", "/analytics", "Analytics"),
        ]
    } else {
        &[("app", "", "App")]
    };
    h.push_str("<nav class=\"tabs\" aria-label=\"Space\">");
    for (key, suffix, label) in tabs {
        let current = if *key == tab {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<a href=\"/spaces/{}{suffix}\"{current}>{label}</a>",
            esc(&d.id)
        );
    }
    let _ = write!(
        h,
        "<a href=\"{}\" rel=\"noopener\">Open the app</a></nav>",
        esc(&d.frame_url)
    );
    h
}

/// A gradio release a `<gradio-app>` snippet loads its script from: the
/// Space's `sdk_version` when written as a plain version.
fn gradio_script_version(v: Option<&str>) -> String {
    v.filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .unwrap_or("4.44.1")
        .to_owned()
}

/// The Space's page.
pub fn render(d: &SpaceData) -> String {
    let mut h = render_head(d, "app");
    let _ = write!(
        h,
        "<p id=\"stage-message\" class=\"muted\">{}</p>",
        esc(d.message.as_deref().unwrap_or_default())
    );
    if shows_app(&d.stage) {
        let _ = write!(
            h,
            "<iframe class=\"app\" src=\"{}\" title=\"{}\" allow=\"clipboard-write; microphone; camera\"></iframe>",
            esc(&d.frame_url),
            esc(&d.title)
        );
    } else {
        let _ = write!(
            h,
            "<div class=\"notice\" id=\"not-running\"><p><strong>The app is not running ({}).</strong></p><p>{}</p></div>",
            esc(&d.stage),
            esc(advice(&d.stage, d.owner))
        );
    }
    h.push_str("<div class=\"cols\">");
    // Embedding.
    h.push_str("<section class=\"box\"><h2>Embed</h2>");
    if d.embedding_disabled {
        h.push_str(
            "<p>Its README sets <code>disable_embedding</code>: other sites may not frame it.</p>",
        );
    } else {
        let iframe = format!(
            "<iframe\n  src=\"{}\"\n  frameborder=\"0\"\n  width=\"850\"\n  height=\"450\"\n></iframe>",
            d.app_url
        );
        let _ = write!(
            h,
            "<p>As a frame:</p><pre class=\"snippet\"><code>{}</code></pre>",
            esc(&iframe)
        );
        if d.sdk.as_deref() == Some("gradio") {
            let web = format!(
                "<script\n  type=\"module\"\n  src=\"https://gradio.s3-us-west-2.amazonaws.com/{}/gradio.js\"\n></script>\n<gradio-app src=\"{}\"></gradio-app>",
                gradio_script_version(d.sdk_version.as_deref()),
                d.app_url
            );
            let _ = write!(
                h,
                "<p>As a web component:</p><pre class=\"snippet\"><code>{}</code></pre>",
                esc(&web)
            );
        }
    }
    let _ = write!(
        h,
        "<p>Clone: <code>git clone {}</code></p></section>",
        esc(&d.git_url)
    );
    // Models and datasets.
    h.push_str("<section class=\"box\"><h2>Models and datasets</h2>");
    if d.repos.is_empty() {
        h.push_str("<p class=\"muted\">Its README names no <code>models</code>, <code>datasets</code> or <code>preload_from_hub</code>.</p>");
    } else {
        h.push_str("<table><thead><tr><th scope=\"col\">repo</th><th scope=\"col\">size on this hub</th><th scope=\"col\">in this node's cache</th><th scope=\"col\">in the Space</th></tr></thead><tbody>");
        for r in &d.repos {
            let size = match r.on_hub {
                Some((files, bytes)) => format!("{files} files, {}", human_bytes(bytes)),
                None => "not on this hub".to_owned(),
            };
            let cached = match r.cached {
                Some(bytes) => human_bytes(bytes),
                None => "not yet (filled at the next start)".to_owned(),
            };
            let link = if r.kind == "datasets" {
                format!("/datasets/{}", r.id)
            } else {
                format!("/{}", r.id)
            };
            let _ = write!(
                h,
                "<tr><td>{} <a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code> (read-only)</td></tr>",
                esc(r.kind.trim_end_matches('s')),
                esc(&link),
                esc(&r.id),
                esc(&size),
                esc(&cached),
                esc(&r.mount)
            );
        }
        h.push_str("</tbody></table>");
        if let Some((files, down, reused, secs)) = d.last_fill {
            let _ = write!(
                h,
                "<p>At its last start: {files} files ready in {secs:.2} s, {} downloaded, {} already in this node's cache.</p>",
                esc(&human_bytes(down)),
                esc(&human_bytes(reused))
            );
        }
    }
    h.push_str("</section></div>");
    // Logs: owners only, as in the API.
    if d.owner {
        for (which, title, lines) in [
            ("build", "Build log", &d.build_log),
            ("run", "Run log", &d.run_log),
        ] {
            let mut text = String::new();
            for l in lines {
                text.push_str(&esc(l));
                text.push('\n');
            }
            if lines.is_empty() {
                text.push_str("(nothing yet)\n");
            }
            let _ = write!(
                h,
                "<section><h2 id=\"{which}-log-title\">{title}</h2><pre id=\"{which}-log\" aria-labelledby=\"{which}-log-title\">{text}</pre></section>"
            );
        }
    } else if d.signed_in {
        h.push_str("<p class=\"muted\">Its logs are shown to its owners.</p>");
    } else {
        h.push_str("<p class=\"muted\"><a href=\"/signin\">Sign in</a> as an owner to see its logs and settings.</p>");
    }
    h
}

/// Bytes for people: 1.5 GB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A hardware flavor as the settings offer it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlavorOption {
    pub name: String,
    /// "2 vCPU, 16 GB, 1 GPU (24 GB)".
    pub summary: String,
    pub gpus: u32,
}

/// What the settings page shows.
#[derive(Debug, Clone, Default)]
pub struct SettingsData {
    pub space: SpaceData,
    /// Flavors this machine can run (GPUs it has).
    pub flavors: Vec<FlavorOption>,
    /// Flavors left out for want of GPUs.
    pub flavors_unavailable: usize,
    pub gpus_total: usize,
    pub gpus_free: usize,
    pub hardware_requested: String,
    pub sleep_time: i64,
    pub default_sleep: i64,
    pub paused: bool,
    pub secrets: Vec<(String, Option<String>)>,
    pub variables: Vec<(String, String, Option<String>)>,
    /// The outcome of the last form, from the redirect's query.
    pub flash: Option<String>,
    pub csrf: String,
}

fn form(id: &str, action: &str, csrf: &str, inner: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/spaces/{}/settings/{action}\">{}{inner}</form>",
        esc(id),
        csrf_field(csrf)
    )
}

/// The settings page.
pub fn render_settings(s: &SettingsData) -> String {
    let d = &s.space;
    let mut h = render_head(d, "settings");
    if let Some(f) = &s.flash {
        let _ = write!(h, "<p class=\"notice ok\" role=\"status\">{}</p>", esc(f));
    }
    // Hardware.
    let mut options = String::new();
    for f in &s.flavors {
        let _ = write!(
            options,
            "<option value=\"{n}\"{sel}>{n}: {}</option>",
            esc(&f.summary),
            n = esc(&f.name),
            sel = if f.name == s.hardware_requested {
                " selected"
            } else {
                ""
            }
        );
    }
    let gpu_note = if s.gpus_total == 0 {
        "This machine has no GPUs (none found by NVML), so only CPU flavors are offered.".to_owned()
    } else {
        format!(
            "GPUs on this machine: {} ({} free).",
            s.gpus_total, s.gpus_free
        )
    };
    let mut unavailable = String::new();
    if s.flavors_unavailable > 0 {
        unavailable = format!(
            " {} flavors need more GPUs than this machine has.",
            s.flavors_unavailable
        );
    }
    h.push_str("<div class=\"cols\"><section class=\"box\"><h2>Hardware</h2>");
    h.push_str(&form(
        &d.id,
        "hardware",
        &s.csrf,
        &format!(
            "<label for=\"s-hardware\">Flavor</label><select id=\"s-hardware\" name=\"flavor\">{options}</select><p class=\"muted\">{}{}</p><button type=\"submit\">Save hardware</button>",
            esc(&gpu_note),
            esc(&unavailable)
        ),
    ));
    h.push_str("</section>");
    // Sleep time.
    let _ = write!(h, "<section class=\"box\"><h2>Sleep time</h2>");
    h.push_str(&form(
        &d.id,
        "sleep",
        &s.csrf,
        &format!(
            "<label for=\"s-sleep\">Seconds idle before it sleeps (-1: never)</label><input id=\"s-sleep\" name=\"seconds\" type=\"number\" min=\"-1\" step=\"1\" required value=\"{}\"><p class=\"muted\">The hub's default is {}.</p><button type=\"submit\">Save sleep time</button>",
            s.sleep_time, s.default_sleep
        ),
    ));
    h.push_str("</section>");
    // Visibility.
    let mut vis = String::new();
    for v in ["public", "protected", "private"] {
        let _ = write!(
            vis,
            "<option value=\"{v}\"{}>{v}</option>",
            if v == d.visibility { " selected" } else { "" }
        );
    }
    h.push_str("<section class=\"box\"><h2>Visibility</h2>");
    h.push_str(&form(
        &d.id,
        "visibility",
        &s.csrf,
        &format!(
            "<label for=\"s-visibility\">Who may see it</label><select id=\"s-visibility\" name=\"visibility\">{vis}</select><p class=\"muted\">public: anyone; protected: anyone may use the app, the repo is private; private: only its owners.</p><button type=\"submit\">Save visibility</button>"
        ),
    ));
    h.push_str("</section>");
    // Actions.
    h.push_str("<section class=\"box\"><h2>Restart, rebuild, pause</h2>");
    h.push_str(&form(
        &d.id,
        "restart",
        &s.csrf,
        "<button type=\"submit\">Restart</button>",
    ));
    h.push_str(&form(
        &d.id,
        "rebuild",
        &s.csrf,
        "<p class=\"muted\">A factory rebuild builds the image again without the build cache.</p><button type=\"submit\">Factory rebuild</button>",
    ));
    if s.paused {
        h.push_str("<p>It is paused; Restart runs it again.</p>");
    } else {
        h.push_str(&form(
            &d.id,
            "pause",
            &s.csrf,
            "<p class=\"muted\">Pausing stops it until someone restarts it.</p><button type=\"submit\" class=\"danger\">Pause</button>",
        ));
    }
    h.push_str("</section></div>");
    // Secrets: names only, values write-only.
    h.push_str("<section class=\"box\"><h2>Secrets</h2><p class=\"muted\">Values are write-only: they reach the app as environment variables and are never shown again.</p>");
    if s.secrets.is_empty() {
        h.push_str("<p>No secrets.</p>");
    } else {
        h.push_str("<table><tbody>");
        for (k, desc) in &s.secrets {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(k),
                esc(desc.as_deref().unwrap_or_default()),
                form(
                    &d.id,
                    "secret-delete",
                    &s.csrf,
                    &format!(
                        "<input type=\"hidden\" name=\"key\" value=\"{}\"><button type=\"submit\" class=\"danger\" aria-label=\"Delete secret {k}\">Delete</button>",
                        esc(k),
                        k = esc(k)
                    )
                )
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str(&form(
        &d.id,
        "secret",
        &s.csrf,
        "<label for=\"sec-key\">Name</label><input id=\"sec-key\" name=\"key\" required pattern=\"[A-Za-z_][A-Za-z0-9_]*\" autocomplete=\"off\"><label for=\"sec-value\">Value</label><input id=\"sec-value\" name=\"value\" type=\"password\" autocomplete=\"new-password\"><label for=\"sec-desc\">Description (optional)</label><input id=\"sec-desc\" name=\"description\"><p><button type=\"submit\">Save secret</button></p>",
    ));
    h.push_str("</section>");
    // Variables.
    h.push_str("<section class=\"box\"><h2>Variables</h2>");
    if s.variables.is_empty() {
        h.push_str("<p>No variables.</p>");
    } else {
        h.push_str("<table><tbody>");
        for (k, v, desc) in &s.variables {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(k),
                esc(v),
                esc(desc.as_deref().unwrap_or_default()),
                form(
                    &d.id,
                    "variable-delete",
                    &s.csrf,
                    &format!(
                        "<input type=\"hidden\" name=\"key\" value=\"{k}\"><button type=\"submit\" class=\"danger\" aria-label=\"Delete variable {k}\">Delete</button>",
                        k = esc(k)
                    )
                )
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str(&form(
        &d.id,
        "variable",
        &s.csrf,
        "<label for=\"var-key\">Name</label><input id=\"var-key\" name=\"key\" required pattern=\"[A-Za-z_][A-Za-z0-9_]*\" autocomplete=\"off\"><label for=\"var-value\">Value</label><input id=\"var-value\" name=\"value\"><label for=\"var-desc\">Description (optional)</label><input id=\"var-desc\" name=\"description\"><p><button type=\"submit\">Save variable</button></p>",
    ));
    h.push_str("<p class=\"muted\">Changing secrets or variables restarts a running Space with them.</p></section>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(stage: &str, owner: bool) -> SpaceData {
        SpaceData {
            id: "alice/chat".into(),
            title: "Chat".into(),
            emoji: "💬".into(),
            sdk: Some("gradio".into()),
            stage: stage.into(),
            hardware: "cpu-basic".into(),
            visibility: "public".into(),
            app_url: "http://alice-chat.localhost:8080/".into(),
            frame_url: "http://alice-chat.localhost:8080/?__sign=spt1.x.y".into(),
            git_url: "http://localhost:8080/spaces/alice/chat".into(),
            owner,
            signed_in: owner,
            ..SpaceData::default()
        }
    }

    #[test]
    fn a_running_space_shows_its_own_app_in_the_frame() {
        let html = render(&data("RUNNING", false));
        assert!(html.contains(
            "<iframe class=\"app\" src=\"http://alice-chat.localhost:8080/?__sign=spt1.x.y\""
        ));
        assert!(!html.contains("not-running"));
    }

    #[test]
    fn a_space_that_does_not_run_says_why_and_what_to_do() {
        let mut d = data("BUILD_ERROR", true);
        d.message = Some("pip <failed>".into());
        let html = render(&d);
        assert!(!html.contains("<iframe class=\"app\""));
        assert!(html.contains("The build failed"));
        assert!(html.contains("pip &lt;failed&gt;"));
    }

    #[test]
    fn logs_are_for_owners_and_escaped() {
        let mut d = data("RUNNING", true);
        d.run_log = vec!["<script>x</script>".into()];
        let html = render(&d);
        assert!(html.contains("<pre id=\"run-log\""));
        assert!(html.contains("data-events=\"/spaces/alice/chat/live\""));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!render(&data("RUNNING", false)).contains("id=\"run-log\""));
    }

    #[test]
    fn embed_snippets_are_shown_as_text() {
        let html = render(&data("RUNNING", false));
        assert!(html.contains("&lt;iframe\n  src=&quot;http://alice-chat.localhost:8080/&quot;"));
        assert!(html.contains("&lt;gradio-app src=&quot;http://alice-chat.localhost:8080/&quot;"));
        let mut d = data("RUNNING", false);
        d.sdk = Some("static".into());
        assert!(!render(&d).contains("gradio-app"));
    }

    #[test]
    fn settings_forms_carry_csrf_and_label_every_field() {
        let s = SettingsData {
            space: data("RUNNING", true),
            flavors: vec![FlavorOption {
                name: "cpu-basic".into(),
                summary: "2 vCPU".into(),
                gpus: 0,
            }],
            secrets: vec![("TOKEN\"".into(), None)],
            variables: vec![("MODE".into(), "<dev>".into(), None)],
            csrf: "c1".into(),
            sleep_time: 300,
            ..SettingsData::default()
        };
        let html = render_settings(&s);
        let forms = html.matches("<form method=\"post\"").count();
        assert_eq!(
            forms,
            html.matches("name=\"csrf\" value=\"c1\"").count(),
            "every form has the token"
        );
        assert!(html.contains("&lt;dev&gt;"));
        assert!(html.contains("TOKEN&quot;"));
        assert!(html.contains("no GPUs"));
        // Every visible field has a label pointing at it.
        for id in html.match_indices(" id=\"").map(|(i, _)| {
            let rest = &html[i + 5..];
            &rest[..rest.find('"').unwrap()]
        }) {
            if id.starts_with("s-") || id.starts_with("sec-") || id.starts_with("var-") {
                assert!(html.contains(&format!("<label for=\"{id}\"")), "{id}");
            }
        }
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
