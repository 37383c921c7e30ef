//! The gallery: one card per Space the viewer may see, with a search box
//! and filters by SDK, stage and tag (a plain GET form, so it works without
//! JavaScript and filtered views can be linked). Pure: cards in, markup out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Deserialize;
use spaceport_proxy::pages::escape as esc;

use crate::config::Color;

/// What a card shows, gathered by the caller from the Space's README, its
/// stage and its analytics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Card {
    /// `owner/name`.
    pub id: String,
    pub title: String,
    pub emoji: String,
    /// README `colorFrom` / `colorTo` as written (unknown words show gray).
    pub color_from: Option<String>,
    pub color_to: Option<String>,
    pub short_description: Option<String>,
    pub sdk: Option<String>,
    pub stage: String,
    /// The flavor asked for.
    pub hardware: String,
    pub tags: Vec<String>,
    pub private: bool,
    /// Visits of the last seven UTC days, today included.
    pub visits_7d: u64,
}

/// The gallery's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sdk: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub tag: String,
}

impl Filter {
    /// Whether a card passes: the search words each appear in the id,
    /// title, description or tags (any case); the other filters match
    /// exactly when set.
    pub fn matches(&self, card: &Card) -> bool {
        let hay = format!(
            "{} {} {} {}",
            card.id,
            card.title,
            card.short_description.as_deref().unwrap_or_default(),
            card.tags.join(" ")
        )
        .to_lowercase();
        let words_ok = self
            .q
            .split_whitespace()
            .all(|w| hay.contains(&w.to_lowercase()));
        words_ok
            && (self.sdk.is_empty() || card.sdk.as_deref() == Some(self.sdk.as_str()))
            && (self.stage.is_empty() || card.stage == self.stage)
            && (self.tag.is_empty() || card.tags.contains(&self.tag))
    }

    fn is_empty(&self) -> bool {
        self.q.trim().is_empty()
            && self.sdk.is_empty()
            && self.stage.is_empty()
            && self.tag.is_empty()
    }
}

/// The CSS color of a card color word (a fixed table: README words never
/// reach the stylesheet).
pub fn css_color(word: Option<&str>) -> &'static str {
    match word.and_then(|w| w.parse::<Color>().ok()) {
        Some(Color::Red) => "#ef4444",
        Some(Color::Yellow) => "#eab308",
        Some(Color::Green) => "#22c55e",
        Some(Color::Blue) => "#3b82f6",
        Some(Color::Indigo) => "#6366f1",
        Some(Color::Purple) => "#a855f7",
        Some(Color::Pink) => "#ec4899",
        Some(Color::Gray) | None => "#6b7280",
    }
}

fn card_html(card: &Card) -> String {
    let mut meta = format!(
        "<span class=\"badge {s}\">{s}</span><span>{}</span>",
        esc(&card.hardware),
        s = esc(&card.stage)
    );
    if let Some(sdk) = &card.sdk {
        let _ = write!(meta, "<span>{}</span>", esc(sdk));
    }
    if card.private {
        meta.push_str("<span>private</span>");
    }
    let _ = write!(
        meta,
        "<span title=\"visits of the last 7 days\">{} visit{}/7d</span>",
        card.visits_7d,
        if card.visits_7d == 1 { "" } else { "s" }
    );
    format!(
        "<li><a class=\"card\" href=\"/spaces/{id}\" style=\"background:linear-gradient(135deg,{from},{to})\" data-space=\"{id}\"><div class=\"emoji\" aria-hidden=\"true\">{emoji}</div><div><div class=\"title\">{title}</div><div class=\"desc\">{desc}</div><div class=\"muted-id\">{id}</div></div><div class=\"meta\">{meta}</div></a></li>",
        id = esc(&card.id),
        from = css_color(card.color_from.as_deref()),
        to = css_color(card.color_to.as_deref()),
        emoji = esc(&card.emoji),
        title = esc(&card.title),
        desc = esc(card.short_description.as_deref().unwrap_or_default()),
    )
}

fn select(name: &str, label: &str, options: &BTreeSet<String>, chosen: &str) -> String {
    let mut s = format!(
        "<div><label for=\"f-{name}\">{label}</label><select id=\"f-{name}\" name=\"{name}\"><option value=\"\">any</option>"
    );
    for o in options {
        let _ = write!(
            s,
            "<option value=\"{v}\"{sel}>{v}</option>",
            v = esc(o),
            sel = if o == chosen { " selected" } else { "" }
        );
    }
    s.push_str("</select></div>");
    s
}

/// The gallery's body: the filter form and the matching cards.
pub fn render(cards: &[Card], filter: &Filter, signed_in: bool) -> String {
    let sdks: BTreeSet<String> = ["docker", "gradio", "static", "streamlit"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(cards.iter().filter_map(|c| c.sdk.clone()))
        .collect();
    let stages: BTreeSet<String> = cards.iter().map(|c| c.stage.clone()).collect();
    let tags: BTreeSet<String> = cards.iter().flat_map(|c| c.tags.clone()).collect();
    let mut html = String::from("<h1>Spaces</h1>");
    let _ = write!(
        html,
        "<form class=\"filters\" method=\"get\" action=\"/\" role=\"search\"><div><label for=\"f-q\">Search</label><input id=\"f-q\" type=\"search\" name=\"q\" value=\"{}\" placeholder=\"name, title, tag\"></div>{}{}{}<div><button type=\"submit\">Filter</button></div></form>",
        esc(&filter.q),
        select("sdk", "SDK", &sdks, &filter.sdk),
        select("stage", "Stage", &stages, &filter.stage),
        select("tag", "Tag", &tags, &filter.tag),
    );
    let shown: Vec<&Card> = cards.iter().filter(|c| filter.matches(c)).collect();
    if shown.is_empty() {
        html.push_str(if cards.is_empty() {
            if signed_in {
                "<p class=\"notice\">No Spaces yet. Create one with <code>spaceport create</code> (or the API) and <code>git push</code> to it.</p>"
            } else {
                "<p class=\"notice\">No public Spaces yet. <a href=\"/signin\">Sign in</a> to see your private ones.</p>"
            }
        } else {
            "<p class=\"notice\">No Space matches these filters. <a href=\"/\">Show all</a>.</p>"
        });
        return html;
    }
    if !filter.is_empty() {
        let _ = write!(
            html,
            "<p class=\"muted\">{} of {} Spaces. <a href=\"/\">Clear filters</a></p>",
            shown.len(),
            cards.len()
        );
    }
    html.push_str("<ul class=\"grid\">");
    for c in shown {
        html.push_str(&card_html(c));
    }
    html.push_str("</ul>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str) -> Card {
        Card {
            id: id.into(),
            title: "Hello".into(),
            emoji: "🚀".into(),
            sdk: Some("gradio".into()),
            stage: "RUNNING".into(),
            hardware: "cpu-basic".into(),
            tags: vec!["demo".into()],
            ..Card::default()
        }
    }

    #[test]
    fn filters_combine_search_words_sdk_stage_and_tag() {
        let c = card("alice/chat");
        let f = |q: &str, sdk: &str, stage: &str, tag: &str| Filter {
            q: q.into(),
            sdk: sdk.into(),
            stage: stage.into(),
            tag: tag.into(),
        };
        assert!(f("", "", "", "").matches(&c));
        assert!(f("ALICE hello", "gradio", "RUNNING", "demo").matches(&c));
        assert!(!f("bob", "", "", "").matches(&c));
        assert!(!f("", "static", "", "").matches(&c));
        assert!(!f("", "", "SLEEPING", "").matches(&c));
        assert!(!f("", "", "", "dem").matches(&c), "tags match whole");
    }

    #[test]
    fn hostile_readme_values_are_escaped_and_colors_come_from_a_table() {
        let mut c = card("eve/x");
        c.title = "<script>alert(1)</script>".into();
        c.short_description = Some("\" onmouseover=\"x".into());
        c.emoji = "<img src=x>".into();
        c.color_from = Some("red;background:url(//evil)".into());
        c.color_to = Some("blue".into());
        let html = render(&[c], &Filter::default(), false);
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&quot; onmouseover=&quot;x"));
        assert!(!html.contains("evil"));
        assert!(html.contains("linear-gradient(135deg,#6b7280,#3b82f6)"));
    }

    #[test]
    fn cards_show_stage_hardware_and_weekly_visits_and_every_field_has_a_label() {
        let mut c = card("alice/chat");
        c.visits_7d = 42;
        let html = render(&[c], &Filter::default(), true);
        assert!(html.contains("RUNNING") && html.contains("cpu-basic"));
        assert!(html.contains("42 visits/7d"));
        for id in ["f-q", "f-sdk", "f-stage", "f-tag"] {
            assert!(html.contains(&format!("<label for=\"{id}\"")), "{id}");
        }
    }

    #[test]
    fn an_empty_gallery_says_what_to_do() {
        assert!(render(&[], &Filter::default(), false).contains("Sign in"));
        let f = Filter {
            q: "zzz".into(),
            ..Filter::default()
        };
        assert!(render(&[card("a/b")], &f, false).contains("No Space matches"));
    }
}
