//! The frame every page shares (header, sign-in state, stylesheet, the one
//! script), the stylesheet and the script themselves, and small escaping
//! helpers. Pure: strings in, markup out.
//!
//! Pages show everything without JavaScript; the script only keeps the
//! stage badge and the log views live (server-sent events). The content
//! security policy allows scripts from this hub only, so no inline script
//! can run even if escaping ever failed.

use spaceport_proxy::pages::escape as esc;

/// Who looks at a page: their name and the CSRF token of their forms.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in user's name.
    pub user: Option<String>,
    /// The CSRF token bound to this browser's session.
    pub csrf: String,
}

/// A hidden CSRF field, for inside a `<form method="post">`.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A whole page.
pub fn page(title: &str, chrome: &Chrome, body: &str) -> String {
    let who = match &chrome.user {
        Some(name) => format!(
            "<a class=\"who\" href=\"/account\" title=\"Your tokens and sessions\">{}</a><form method=\"post\" action=\"/signout\" class=\"inline\">{}<button type=\"submit\">Sign out</button></form>",
            esc(name),
            csrf_field(&chrome.csrf)
        ),
        None => "<a href=\"/signin\">Sign in</a>".to_owned(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} - spaceport</title><link rel=\"stylesheet\" href=\"/ui/style.css\"><script src=\"/ui/live.js\" defer></script></head><body><header class=\"top\"><a class=\"brand\" href=\"/\">spaceport</a><nav><a href=\"/\">Spaces</a><a href=\"/analytics\">Analytics</a>{who}</nav></header><main>{body}</main></body></html>",
        title = esc(title),
    )
}

/// The content security policy of the UI's pages: this hub's scripts and
/// styles only (style attributes allowed, for the card gradients), frames
/// of the Spaces' own hosts only (`spaces`, e.g. `http://*.localhost:8080`;
/// never the hub's own origin).
pub fn csp(spaces: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src {spaces}; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    )
}

/// The policy when the Spaces' origin cannot be written in a header.
pub const FALLBACK_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'none'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'";

/// The stylesheet, served at `/ui/style.css`.
pub const STYLE: &str = r#":root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#fff}
a{color:var(--accent)}
code{overflow-wrap:anywhere}
header.top{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:var(--bg)}
header.top .brand{font-weight:700;text-decoration:none;color:var(--fg)}
header.top nav{display:flex;flex-wrap:wrap;gap:.8rem;align-items:center}
.who{color:var(--muted)}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.3rem 0 .8rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.4rem 0 .6rem}
form.inline{display:inline}
label{display:block;font-weight:600;font-size:.9rem;margin:.4rem 0 .15rem}
input,select,button,textarea{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:.35rem;max-width:100%}
button{background:var(--bg);cursor:pointer}
button.danger{border-color:#dc2626;color:#b91c1c}
.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;margin-bottom:1rem}
.filters>div{min-width:9rem;flex:1}
.filters input,.filters select{width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:1rem;padding:0;list-style:none}
.card{border-radius:.7rem;color:#fff;min-height:9rem;padding:.8rem;display:flex;flex-direction:column;justify-content:space-between;text-decoration:none;text-shadow:0 1px 2px rgba(0,0,0,.45)}
.card .emoji{font-size:2rem;line-height:1}
.card .title{font-weight:700;font-size:1.1rem;overflow-wrap:anywhere}
.card .desc{font-size:.9rem;overflow-wrap:anywhere}
.card .meta{display:flex;flex-wrap:wrap;gap:.3rem;font-size:.75rem}
.card .meta span{background:rgba(0,0,0,.3);border-radius:.3rem;padding:.05rem .35rem}
.card .meta span.badge{background:rgba(255,255,255,.92);color:#111;text-shadow:none}
.badge{display:inline-block;font-size:.75rem;font-weight:700;letter-spacing:.02em;padding:.1rem .45rem;border-radius:.3rem;background:#e5e7eb;color:#111}
.badge.RUNNING{background:#dcfce7;color:#166534}
.badge.BUILDING,.badge.APP_STARTING,.badge.RUNNING_BUILDING,.badge.RUNNING_APP_STARTING{background:#dbeafe;color:#1e40af}
.badge.BUILD_ERROR,.badge.RUNTIME_ERROR,.badge.CONFIG_ERROR,.badge.NO_APP_FILE{background:#fee2e2;color:#991b1b}
.badge.SLEEPING,.badge.PAUSED,.badge.STOPPED{background:#fef9c3;color:#854d0e}
.spacehead{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center}
.spacehead .emoji{font-size:2rem}
.tabs{display:flex;flex-wrap:wrap;gap:.8rem;margin:.4rem 0 1rem;border-bottom:1px solid var(--line);padding-bottom:.4rem}
iframe.app{width:100%;height:70vh;min-height:24rem;max-height:40rem;border:1px solid var(--line);border-radius:.5rem}
.notice{border:1px solid var(--line);border-left:4px solid #f59e0b;background:#fffbeb;padding:.7rem 1rem;border-radius:.4rem}
.notice.ok{border-left-color:#16a34a;background:#f0fdf4}
.notice.err{border-left-color:#dc2626;background:#fef2f2}
pre{background:#0d1117;color:#e6edf3;padding:.7rem;border-radius:.4rem;overflow:auto;max-height:22rem;font-size:.8rem;white-space:pre-wrap;overflow-wrap:anywhere}
pre.snippet{background:var(--bg);color:var(--fg);max-height:none}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);overflow-wrap:anywhere}
.chart{width:100%;height:auto;max-width:42rem;display:block}
.legend span{margin-right:.8rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle;border-radius:.15rem}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem}
.box{border:1px solid var(--line);border-radius:.5rem;padding:.6rem 1rem}
.muted{color:var(--muted)}
@media (max-width:480px){main{padding:.6rem}.cols{grid-template-columns:1fr}iframe.app{height:60vh}}
"#;

/// The script, served at `/ui/live.js`: stage badges and log views follow
/// their event streams. Everything it updates is on the page without it.
pub const SCRIPT: &str = r#""use strict";
(function () {
  var root = document.querySelector("[data-events]");
  if (!root || !window.EventSource) { return; }
  var es = new EventSource(root.getAttribute("data-events"));
  var badge = document.querySelector(".badge[data-live]");
  var first = badge ? badge.textContent : "";
  var logs = { build: document.getElementById("build-log"), run: document.getElementById("run-log") };
  es.addEventListener("open", function () {
    // The stream starts with the logs' history: show it afresh.
    Object.keys(logs).forEach(function (k) {
      if (logs[k]) { logs[k].textContent = ""; logs[k].setAttribute("data-lines", "0"); }
    });
  });
  es.addEventListener("stage", function (e) {
    var d = JSON.parse(e.data);
    if (!badge) { return; }
    badge.textContent = d.stage;
    badge.className = "badge " + d.stage;
    var msg = document.getElementById("stage-message");
    if (msg) { msg.textContent = d.message || ""; }
    var wantsFrame = d.stage === "RUNNING" || d.stage === "SLEEPING" ||
      d.stage === "RUNNING_BUILDING" || d.stage === "RUNNING_APP_STARTING";
    var hasFrame = !!document.querySelector("iframe.app");
    if (d.stage !== first && wantsFrame !== hasFrame && badge.hasAttribute("data-reload")) {
      es.close();
      window.location.reload();
    }
  });
  Object.keys(logs).forEach(function (k) {
    es.addEventListener(k, function (e) {
      var pre = logs[k];
      if (!pre) { return; }
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(JSON.parse(e.data) + "\n"));
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
      pre.setAttribute("data-lines", String((+pre.getAttribute("data-lines") || 0) + 1));
    });
  });
  // Leaving the page ends the stream (and lets the page be cached).
  window.addEventListener("pagehide", function () { es.close(); });
})();
"#;

/// A stage badge; `live` makes the page's event stream update it, and
/// `reload` reloads the page when the app starts or stops showing.
pub fn badge(stage: &str, live: bool, reload: bool) -> String {
    format!(
        "<span class=\"badge {s}\"{}{}>{s}</span>",
        if live { " data-live" } else { "" },
        if reload { " data-reload" } else { "" },
        s = esc(stage)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_titles_and_names_and_carry_the_csrf_token_to_sign_out() {
        let chrome = Chrome {
            user: Some("<eve>".into()),
            csrf: "tok\"en".into(),
        };
        let html = page("a<b", &chrome, "<p>body</p>");
        assert!(html.contains("<title>a&lt;b - spaceport</title>"));
        assert!(html.contains("&lt;eve&gt;"));
        assert!(html.contains("value=\"tok&quot;en\""));
        assert!(html.contains("<p>body</p>"));
        assert!(html.contains("name=\"viewport\""));
    }

    #[test]
    fn signed_out_pages_link_to_sign_in() {
        let html = page("x", &Chrome::default(), "");
        assert!(html.contains("href=\"/signin\""));
        assert!(!html.contains("/signout"));
    }

    #[test]
    fn badges_escape_their_stage() {
        let b = badge("<x>", true, true);
        assert!(b.contains("&lt;x&gt;") && b.contains("data-live") && b.contains("data-reload"));
        assert!(!badge("RUNNING", false, false).contains("data-live"));
    }
}
