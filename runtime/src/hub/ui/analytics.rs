//! The analytics pages, of one Space and of the whole node: visits and
//! unique visitors per day, requests by status class, wakes per day (from
//! the database), latency and wake-latency percentiles (from the proxy's
//! histograms, since the process started, labelled as such), and on the
//! node page the GPU panel. Pure: the handler gathers the numbers.

use std::fmt::Write as _;

use spaceport_proxy::pages::escape as esc;

use super::charts::{self, Series, Style};
use crate::state::DayStats;

/// Quantiles of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Observations behind them.
    pub count: f64,
}

impl Percentiles {
    pub fn from_buckets(b: &charts::Buckets) -> Option<Self> {
        Some(Percentiles {
            p50: charts::quantile(0.5, b)?,
            p90: charts::quantile(0.9, b)?,
            p99: charts::quantile(0.99, b)?,
            count: b.last()?.1,
        })
    }
}

/// One GPU in the panel.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuRow {
    pub index: u32,
    pub name: String,
    pub memory_used: u64,
    pub memory_total: u64,
    pub utilization: u32,
    /// The Space holding it.
    pub holder: Option<String>,
}

/// What an analytics page shows.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsData {
    /// "alice/chat" or "this node".
    pub scope: String,
    pub days: Vec<DayStats>,
    /// Response-head latency since the hub started.
    pub latency: Option<Percentiles>,
    /// Wake latency since the hub started.
    pub wake_latency: Option<Percentiles>,
    /// The GPU panel (node page only).
    pub gpus: Option<Vec<GpuRow>>,
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date_of(day: u32) -> String {
    let (y, m, d) = crate::build::civil_date(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds for people: "4.2 ms", "1.3 s".
pub fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{} ms", charts::fmt_num(secs * 1000.0))
    } else {
        format!("{} s", charts::fmt_num(secs))
    }
}

fn percentile_block(id: &str, title: &str, p: Option<Percentiles>, empty: &str) -> String {
    let mut h = format!("<section class=\"box\"><h2>{}</h2>", esc(title));
    match p {
        None => {
            let _ = write!(h, "<p class=\"muted\">{}</p>", esc(empty));
        }
        Some(p) => {
            let labels = vec!["p50".to_owned(), "p90".to_owned(), "p99".to_owned()];
            h.push_str(&charts::bars(
                id,
                title,
                &labels,
                &[Series::new("seconds", vec![p.p50, p.p90, p.p99])],
                Style {
                    unit: "s",
                    ..Style::default()
                },
            ));
            let _ = write!(
                h,
                "<p class=\"muted\">p50 {}, p90 {}, p99 {} over {} observations. Source: the proxy's histogram since this hub started, estimated within its buckets.</p>",
                esc(&duration(p.p50)),
                esc(&duration(p.p90)),
                esc(&duration(p.p99)),
                esc(&charts::fmt_num(p.count)),
            );
        }
    }
    h.push_str("</section>");
    h
}

/// Daily counts: side by side, totals in the legend.
const COUNTS: Style<'static> = Style {
    stacked: false,
    unit: "",
    totals: true,
};

/// The body of an analytics page.
pub fn render(a: &AnalyticsData) -> String {
    let labels: Vec<String> = a
        .days
        .iter()
        .map(|d| date_of(d.day).get(5..).unwrap_or_default().to_owned())
        .collect();
    let col =
        |f: &dyn Fn(&DayStats) -> u64| -> Vec<f64> { a.days.iter().map(|d| f(d) as f64).collect() };
    let window = match (a.days.first(), a.days.last()) {
        (Some(f), Some(l)) => format!("{} to {} (UTC days)", date_of(f.day), date_of(l.day)),
        _ => "no days".to_owned(),
    };
    let mut h = format!(
        "<p class=\"muted\">{} &middot; daily numbers from the database, {}</p>",
        esc(&a.scope),
        esc(&window)
    );
    let visits = vec![
        Series::new("visits", col(&|d| d.visits)),
        Series::new("unique visitors", col(&|d| d.unique_visitors)),
    ];
    let total_visits: u64 = a.days.iter().map(|d| d.visits).sum();
    let _ = write!(
        h,
        "<section class=\"box\"><h2>Visits and unique visitors per day</h2><p id=\"visits-total\" data-visits=\"{total_visits}\">{total_visits} visits in this window.</p>{}{}</section>",
        charts::bars(
            "visits",
            "Visits and unique visitors per day",
            &labels,
            &visits,
            COUNTS
        ),
        charts::table("Visits as a table", &labels, &visits)
    );
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let requests: Vec<Series> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| Series::new(*c, col(&|d| d.requests_by_class[i])))
        .collect();
    let _ = write!(
        h,
        "<section class=\"box\"><h2>Requests by status class</h2>{}{}</section>",
        charts::bars(
            "requests",
            "Requests per day by status class",
            &labels,
            &requests,
            Style {
                stacked: true,
                ..COUNTS
            }
        ),
        charts::table("Requests as a table", &labels, &requests)
    );
    let wakes = vec![Series::new("wakes", col(&|d| d.wakes))];
    h.push_str(&percentile_block(
        "latency",
        "Latency to the response head",
        a.latency,
        "No requests measured since this hub started.",
    ));
    let _ = write!(
        h,
        "<section class=\"box\"><h2>Wakes per day</h2>{}</section>",
        charts::bars("wakes", "Wakes from sleep per day", &labels, &wakes, COUNTS)
    );
    h.push_str(&percentile_block(
        "wake-latency",
        "Wake latency",
        a.wake_latency,
        "No wakes measured since this hub started.",
    ));
    if let Some(gpus) = &a.gpus {
        h.push_str(&gpu_panel(gpus));
    }
    h
}

/// The GPU panel: one row per GPU, or plainly none.
pub fn gpu_panel(gpus: &[GpuRow]) -> String {
    let mut h = String::from("<section class=\"box\" id=\"gpus\"><h2>GPUs</h2>");
    if gpus.is_empty() {
        h.push_str("<p>No GPUs: NVML found none on this machine (no NVIDIA driver, or no NVIDIA GPU). Spaces run on CPU flavors here.</p></section>");
        return h;
    }
    h.push_str("<table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">model</th><th scope=\"col\">memory used</th><th scope=\"col\">utilization</th><th scope=\"col\">held by</th></tr></thead><tbody>");
    for g in gpus {
        let holder = match &g.holder {
            Some(s) => format!("<a href=\"/spaces/{s}\">{s}</a>", s = esc(s)),
            None => "free".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}%</td><td>{holder}</td></tr>",
            g.index,
            esc(&g.name),
            esc(&super::space::human_bytes(g.memory_used)),
            esc(&super::space::human_bytes(g.memory_total)),
            g.utilization
        );
    }
    h.push_str("</tbody></table><p class=\"muted\">Memory and utilization as NVML last reported them.</p></section>");
    h
}

/// The cumulative buckets of a histogram in Prometheus' text format,
/// summed over the series whose `space` label is `space` (all series when
/// `None`). Lines that do not parse are skipped.
pub fn histogram_buckets(text: &str, metric: &str, space: Option<&str>) -> Vec<(f64, f64)> {
    let prefix = format!("{metric}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        let mut le = None;
        let mut this_space = None;
        for pair in split_labels(labels) {
            if let Some((k, v)) = pair.split_once('=') {
                let v = v.trim_matches('"');
                match k {
                    "le" => le = Some(v.to_owned()),
                    "space" => this_space = Some(v.to_owned()),
                    _ => {}
                }
            }
        }
        if let Some(want) = space
            && this_space.as_deref() != Some(want)
        {
            continue;
        }
        let Some(bound) = le.and_then(|l| {
            if l == "+Inf" {
                Some(f64::INFINITY)
            } else {
                l.parse::<f64>().ok()
            }
        }) else {
            continue;
        };
        match sums.iter_mut().find(|(b, _)| *b == bound) {
            Some(entry) => entry.1 += count,
            None => sums.push((bound, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// Splits `a="x",b="y, z"` at the commas outside quotes.
fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"a/b\",le=\"0.1\"} 3\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"a/b\",le=\"1\"} 4\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"a/b\",le=\"+Inf\"} 4\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"c/d\",le=\"0.1\"} 1\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"c/d\",le=\"1\"} 1\n\
spaceport_proxy_response_head_duration_seconds_bucket{space=\"c/d\",le=\"+Inf\"} 2\n\
spaceport_proxy_response_head_duration_seconds_sum{space=\"a/b\"} 0.3\n";

    #[test]
    fn buckets_are_read_per_space_or_summed_for_the_node() {
        let m = "spaceport_proxy_response_head_duration_seconds";
        let ab = histogram_buckets(TEXT, m, Some("a/b"));
        assert_eq!(ab, vec![(0.1, 3.0), (1.0, 4.0), (f64::INFINITY, 4.0)]);
        let all = histogram_buckets(TEXT, m, None);
        assert_eq!(all, vec![(0.1, 4.0), (1.0, 5.0), (f64::INFINITY, 6.0)]);
        assert!(histogram_buckets(TEXT, m, Some("x/y")).is_empty());
        let p = Percentiles::from_buckets(&ab).unwrap();
        assert_eq!(p.count, 4.0);
        assert!(p.p50 <= 0.1);
    }

    #[test]
    fn dates_come_from_day_numbers() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(19_723), "2024-01-01");
        assert_eq!(date_of(20_513), "2026-03-01");
    }

    #[test]
    fn the_page_reports_visits_and_says_when_latency_is_unknown() {
        let days = vec![
            DayStats {
                day: 20_000,
                visits: 3,
                unique_visitors: 1,
                ..DayStats::default()
            },
            DayStats {
                day: 20_001,
                visits: 4,
                requests_by_class: [0, 7, 0, 1, 0],
                ..DayStats::default()
            },
        ];
        let html = render(&AnalyticsData {
            scope: "a/b".into(),
            days,
            ..AnalyticsData::default()
        });
        assert!(html.contains("data-visits=\"7\""));
        assert!(html.contains("No requests measured"));
        assert!(html.contains("<svg"));
        assert!(!html.contains("id=\"gpus\""));
    }

    #[test]
    fn the_gpu_panel_says_plainly_when_there_are_none() {
        assert!(gpu_panel(&[]).contains("No GPUs"));
        let html = gpu_panel(&[GpuRow {
            index: 0,
            name: "NVIDIA <A10G>".into(),
            memory_used: 1_000_000_000,
            memory_total: 24_000_000_000,
            utilization: 37,
            holder: Some("alice/chat".into()),
        }]);
        assert!(html.contains("NVIDIA &lt;A10G&gt;") && html.contains("37%"));
        assert!(html.contains("href=\"/spaces/alice/chat\""));
    }
}
