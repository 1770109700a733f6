//! A drill's report as one self-contained HTML page: the same blocks as the
//! Markdown (`report::blocks`) and, where they say so, charts drawn with
//! plotters as inline SVG: requests per second, error rate and p50 / p99
//! latency, second by second, one line per POP and one for all of them,
//! the fault's window shaded. No script, no stylesheet or font fetched:
//! the page opens from a file anywhere.

use std::fmt::Write;

use anyhow::Context;
use plotters::prelude::*;

use super::Outcome;
use super::report::{self, Block, Second};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1d2430}\
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #d8dde6}\
table{border-collapse:collapse;margin:.8em 0}th,td{padding:.25em .7em;border-bottom:1px solid #e3e7ee;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}strong{color:#b3261e}\
.passed{color:#1e7b34}.failed{color:#b3261e}figure{margin:1em 0}svg{max-width:100%;height:auto}";

/// The page.
pub fn page(outcome: &Outcome) -> anyhow::Result<String> {
    let mut out = String::new();
    let title = report::blocks(outcome)
        .into_iter()
        .find_map(|b| match b {
            Block::Title(t) => Some(t),
            _ => None,
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    for block in report::blocks(outcome) {
        match block {
            Block::Title(t) => {
                let class = if outcome.passed() { "passed" } else { "failed" };
                let _ = writeln!(out, "<h1 class=\"{class}\">{}</h1>", escape(&t));
            }
            Block::Heading(t) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape(&t));
            }
            Block::Paragraph { lead, text } => {
                let lead = lead.map_or_else(String::new, |l| format!("<b>{}</b> ", escape(&l)));
                let _ = writeln!(out, "<p>{lead}{}</p>", escape(&text));
            }
            Block::Table {
                head,
                numeric,
                rows,
            } => {
                let class = |i: usize| {
                    if numeric.get(i).copied().unwrap_or(false) {
                        " class=\"n\""
                    } else {
                        ""
                    }
                };
                out.push_str("<table><thead><tr>");
                for (i, h) in head.iter().enumerate() {
                    let _ = write!(out, "<th{}>{}</th>", class(i), escape(h));
                }
                out.push_str("</tr></thead><tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for (i, cell) in row.iter().enumerate() {
                        let text = escape(&cell.text);
                        if cell.strong {
                            let _ = write!(out, "<td{}><strong>{text}</strong></td>", class(i));
                        } else {
                            let _ = write!(out, "<td{}>{text}</td>", class(i));
                        }
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::Charts => {
                for chart in charts(outcome)? {
                    let _ = writeln!(out, "<figure>{chart}</figure>");
                }
            }
        }
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

/// One chart's series: a name and its points (seconds, value).
type Series = (String, Vec<(f64, f64)>);

/// The four charts, each an `<svg>` element.
fn charts(outcome: &Outcome) -> anyhow::Result<Vec<String>> {
    let seconds = outcome.options.duration.as_secs().max(1);
    let mut lines: Vec<(String, Vec<Second>)> = report::pops(outcome)
        .into_iter()
        .map(|pop| {
            let series = report::per_second(
                outcome.records.iter().filter(|r| r.pop == pop),
                seconds,
                pop,
            );
            (pop.to_owned(), series)
        })
        .collect();
    lines.push((
        report::ALL_POPS.into(),
        report::per_second(outcome.records.iter(), seconds, report::ALL_POPS),
    ));
    let series = |value: fn(&Second) -> Option<f64>| -> Vec<Series> {
        lines
            .iter()
            .map(|(name, seconds)| {
                let points = seconds
                    .iter()
                    .filter_map(|s| value(s).map(|v| (s.at_s as f64 + 0.5, v)))
                    .collect();
                (name.clone(), points)
            })
            .collect()
    };
    let fault = outcome.options.fault_at.as_secs_f64();
    let window = (fault, fault + outcome.options.fault_for.as_secs_f64());
    let x_max = seconds as f64;
    Ok(vec![
        chart(
            "Throughput",
            "requests/s",
            &series(|s| Some(s.requests as f64)),
            window,
            x_max,
        )?,
        chart(
            "Error rate",
            "errors, % of requests",
            &series(|s| (s.requests > 0).then(|| s.errors as f64 * 100.0 / s.requests as f64)),
            window,
            x_max,
        )?,
        chart(
            "Latency p50",
            "ms",
            &series(|s| (s.requests > 0).then_some(s.p50_ms)),
            window,
            x_max,
        )?,
        chart(
            "Latency p99",
            "ms",
            &series(|s| (s.requests > 0).then_some(s.p99_ms)),
            window,
            x_max,
        )?,
    ])
}

/// A line chart as SVG with the fault's window shaded.
fn chart(
    title: &str,
    y_label: &str,
    series: &[Series],
    window: (f64, f64),
    x_max: f64,
) -> anyhow::Result<String> {
    let top = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_max = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 280)).into_drawing_area();
        root.fill(&WHITE).context("drawing a chart")?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .context("drawing a chart")?;
        chart
            .configure_mesh()
            .x_desc("seconds since the load started")
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .context("drawing a chart's axes")?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(window.0, 0.0), (window.1, y_max)],
                RGBColor(230, 80, 60).mix(0.15).filled(),
            )))
            .context("drawing the fault's window")?
            .label("fault")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 16, y + 5)],
                    RGBColor(230, 80, 60).mix(0.3).filled(),
                )
            });
        for (i, (name, points)) in series.iter().enumerate() {
            let last = i + 1 == series.len();
            let color = if last {
                BLACK.to_rgba()
            } else {
                Palette99::pick(i).to_rgba()
            };
            let width = if last { 1 } else { 2 };
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(width),
                ))
                .context("drawing a series")?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .context("drawing a chart's legend")?;
        root.present().context("finishing a chart")?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_is_self_contained_with_four_charts_and_every_pop() {
        let outcome = crate::drill::tests::outcome(true);
        let page = page(&outcome).expect("the page");
        assert!(page.starts_with("<!doctype html>"));
        assert_eq!(page.matches("<svg").count(), 4, "four charts");
        for pop in report::pops(&outcome) {
            // plotters writes a text element's content on a line of its own.
            assert_eq!(
                page.matches(&format!("\n{pop}\n</text>")).count(),
                4,
                "{pop} in every chart's legend"
            );
        }
        assert_eq!(
            page.matches("\nfault\n</text>").count(),
            4,
            "the fault's window in every chart's legend"
        );
        for forbidden in ["<script", "<link", "src=\"http", "href=\"http", "url("] {
            assert!(!page.contains(forbidden), "{forbidden} in the page");
        }
        assert!(page.contains("class=\"passed\""));
    }
}
