//! Charts as SVG, rendered on the server so they read without JavaScript.
//! Pure: numbers in, markup out (every label escaped); no I/O, no data
//! fetching, and no guessing: a chart shows exactly the values it is given.

use std::fmt::Write as _;

use spaceport_proxy::pages::escape as esc;

/// Colors of the series, in order (readable on white, and for common
/// color blindness: blue, orange, green, red, purple).
const PALETTE: [&str; 5] = ["#2563eb", "#ea580c", "#16a34a", "#dc2626", "#7c3aed"];

/// One named row of values, one per label.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            values,
        }
    }
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// The smallest "round" number (1, 2 or 5 times a power of ten) at or
/// above `v`, so the axis top is a number people read at a glance.
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A number as the axis and the tooltips print it.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        let digits = if v.abs() >= 1.0 { 1 } else { 3 };
        let s = format!("{v:.digits$}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// How a bar chart is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style<'a> {
    /// Series on top of each other rather than side by side.
    pub stacked: bool,
    /// Follows values in the tooltips ("s").
    pub unit: &'a str,
    /// The legend adds each series' total (counts; not for quantiles).
    pub totals: bool,
}

/// Bars per label, one color per series. `id` makes the title's id unique
/// on the page.
pub fn bars(id: &str, title: &str, labels: &[String], series: &[Series], style: Style) -> String {
    let Style {
        stacked,
        unit,
        totals: show_totals,
    } = style;
    let n = labels.len().max(1);
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            let vals = series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0));
            if stacked {
                vals.sum()
            } else {
                vals.fold(0.0, f64::max)
            }
        })
        .collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-t\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"{id}-t\">{}</title>",
        esc(title),
        id = esc(id)
    );
    // Grid and axis labels: 0, half, top.
    for frac in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h * (1.0 - frac);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            esc(&fmt_num(max * frac))
        );
    }
    let groups = if stacked { 1 } else { series.len().max(1) };
    let bar_w = (slot * 0.8 / groups as f64).max(1.0);
    for (i, label) in labels.iter().enumerate() {
        let x0 = LEFT + slot * i as f64 + slot * 0.1;
        let mut base = 0.0;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0.0).max(0.0);
            let h = plot_h * v / max;
            let (x, y) = if stacked {
                (x0, TOP + plot_h - (plot_h * base / max) - h)
            } else {
                (x0 + bar_w * k as f64, TOP + plot_h - h)
            };
            base += v;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {} {} {}</title></rect>",
                PALETTE[k % PALETTE.len()],
                esc(label),
                esc(&fmt_num(v)),
                esc(unit),
                esc(&s.name)
            );
        }
        // Label every bar when few, else about seven of them.
        let every = labels.len().div_ceil(7).max(1);
        if i % every == 0 || i + 1 == labels.len() {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                x0 + slot * 0.4,
                H - 10.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#888\"/></svg>",
        W - RIGHT,
        y = TOP + plot_h
    );
    let mut legend = String::from("<p class=\"legend\">");
    for (k, s) in series.iter().enumerate() {
        let total = if show_totals {
            format!(" (total {})", fmt_num(s.values.iter().sum()))
        } else {
            String::new()
        };
        let _ = write!(
            legend,
            "<span><i style=\"background:{}\"></i>{}{}</span> ",
            PALETTE[k % PALETTE.len()],
            esc(&s.name),
            esc(&total)
        );
    }
    legend.push_str("</p>");
    svg + &legend
}

/// A small table of the same numbers, for screen readers and copying.
pub fn table(caption: &str, labels: &[String], series: &[Series]) -> String {
    let mut t = format!(
        "<details><summary>{}</summary><table><thead><tr><th scope=\"col\">day</th>",
        esc(caption)
    );
    for s in series {
        let _ = write!(t, "<th scope=\"col\">{}</th>", esc(&s.name));
    }
    t.push_str("</tr></thead><tbody>");
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(t, "<tr><th scope=\"row\">{}</th>", esc(l));
        for s in series {
            let _ = write!(
                t,
                "<td>{}</td>",
                esc(&fmt_num(s.values.get(i).copied().unwrap_or(0.0)))
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table></details>");
    t
}

/// The cumulative buckets of a Prometheus histogram: (upper bound, count
/// of observations at or below it), ascending, `+Inf` last.
pub type Buckets = [(f64, f64)];

/// The `q` quantile (0..1) estimated from histogram buckets, as Prometheus'
/// `histogram_quantile` does: linear within the bucket it falls in. `None`
/// when there are no observations; the upper bound of the last finite
/// bucket when the quantile falls in `+Inf`.
pub fn quantile(q: f64, buckets: &Buckets) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev_bound);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket);
        }
        prev_bound = bound;
        prev_count = count;
    }
    Some(prev_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(0.03), 0.05);
    }

    #[test]
    fn bars_escape_labels_and_carry_their_values() {
        let labels = vec!["11-27".to_owned(), "<b>".to_owned()];
        let svg = bars(
            "v",
            "Visits & more",
            &labels,
            &[Series::new("visits", vec![2.0, 5.0])],
            Style {
                totals: true,
                ..Style::default()
            },
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Visits &amp; more"));
        assert!(svg.contains("&lt;b&gt;: 5"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("(total 7)"));
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn stacked_bars_sit_on_each_other() {
        let labels = vec!["d".to_owned()];
        let svg = bars(
            "r",
            "t",
            &labels,
            &[Series::new("2xx", vec![5.0]), Series::new("4xx", vec![5.0])],
            Style {
                stacked: true,
                ..Style::default()
            },
        );
        // Axis top 10: each half of the plot (180 px high) is 90 px.
        assert!(svg.contains("height=\"90.0\""), "{svg}");
        assert!(
            svg.contains("y=\"12.0\""),
            "the upper one reaches the top: {svg}"
        );
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(fmt_num(5.0), "5");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(0.0012), "0.001");
        assert_eq!(fmt_num(2.25), "2.2");
        assert_eq!(fmt_num(123.4), "123");
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(0.7, &b).unwrap() - 0.3).abs() < 1e-9);
        assert!((quantile(0.95, &b).unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        let overflow = [(0.1, 0.0), (f64::INFINITY, 3.0)];
        assert_eq!(quantile(0.99, &overflow), Some(0.1));
    }

    #[test]
    fn tables_escape_too() {
        let t = table(
            "numbers",
            &["<x>".to_owned()],
            &[Series::new("a&b", vec![1.5])],
        );
        assert!(t.contains("&lt;x&gt;") && t.contains("a&amp;b") && t.contains("1.5"));
    }
}
