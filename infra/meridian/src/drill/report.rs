//! A drill's report: the hypothesis and parameters, the timeline, the
//! figures before, during and after the fault (overall, per action and per
//! POP), a catalog change's journey, the invariants and the verdict. One
//! list of blocks says it; `markdown` and `html` render it (the HTML page
//! adds the charts, see `html.rs`).

use std::fmt::Write;

use super::Outcome;
use super::load::Record;

/// Requests, errors and latency of a set of records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Figures {
    pub fn of<'a>(records: impl Iterator<Item = &'a Record>) -> Figures {
        let mut latencies = Vec::new();
        let mut errors = 0;
        for r in records {
            latencies.push(r.latency_ms);
            if r.error() {
                errors += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if latencies.is_empty() {
                0.0
            } else {
                let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
                latencies[i.min(latencies.len() - 1)]
            }
        };
        Figures {
            requests: latencies.len(),
            errors,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The three phases of a drill, by the fault's window.
pub fn phases(outcome: &Outcome) -> [(&'static str, Figures); 3] {
    let fault = outcome.options.fault_at.as_millis() as u64;
    let healed = fault + outcome.options.fault_for.as_millis() as u64;
    let rs = &outcome.records;
    [
        ("before", Figures::of(rs.iter().filter(|r| r.at_ms < fault))),
        (
            "during",
            Figures::of(rs.iter().filter(|r| r.at_ms >= fault && r.at_ms < healed)),
        ),
        (
            "after",
            Figures::of(rs.iter().filter(|r| r.at_ms >= healed)),
        ),
    ]
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "not seen".into(), |v| format!("{v} ms"))
}

/// One cell of a table; `strong` marks what must catch the eye (a broken
/// invariant).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub strong: bool,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            strong: false,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

/// A piece of the report, rendered as Markdown or as HTML: the one
/// description of what a report says, so the two never drift.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Title(String),
    Heading(String),
    Paragraph {
        lead: Option<String>,
        text: String,
    },
    /// A header row, which columns are numbers (right-aligned), and rows.
    Table {
        head: Vec<String>,
        numeric: Vec<bool>,
        rows: Vec<Vec<Cell>>,
    },
    /// Where the HTML page puts its charts (Markdown has none).
    Charts,
}

fn figures_row(name: &str, f: &Figures) -> Vec<Cell> {
    vec![
        name.into(),
        f.requests.to_string().into(),
        f.errors.to_string().into(),
        format!("{:.2} %", f.error_rate() * 100.0).into(),
        format!("{:.1} ms", f.p50_ms).into(),
        format!("{:.1} ms", f.p99_ms).into(),
    ]
}

fn figures_table(first: &str, rows: Vec<Vec<Cell>>) -> Block {
    Block::Table {
        head: [first, "requests", "errors", "error rate", "p50", "p99"]
            .map(str::to_owned)
            .to_vec(),
        numeric: vec![false, true, true, true, true, true],
        rows,
    }
}

/// One second of the load at one POP (or at all of them): the routing
/// API's wire shape, which a running drill posts.
pub use routing::drills::DrillSecond as Second;

/// The records second by second (by when each request started), every
/// second of `0..seconds` present, an idle one with zero requests, labelled
/// `pop`.
pub fn per_second<'a>(
    records: impl Iterator<Item = &'a Record>,
    seconds: u64,
    pop: &str,
) -> Vec<Second> {
    let mut buckets: Vec<Vec<&Record>> = vec![Vec::new(); seconds as usize];
    for r in records {
        if let Some(bucket) = buckets.get_mut((r.at_ms / 1000) as usize) {
            bucket.push(r);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(at_s, bucket)| second(at_s as u64, pop, bucket.into_iter()))
        .collect()
}

/// The figures of one second's records at `pop`.
pub fn second<'a>(at_s: u64, pop: &str, records: impl Iterator<Item = &'a Record>) -> Second {
    let f = Figures::of(records);
    Second {
        at_s,
        pop: pop.to_owned(),
        requests: f.requests as u64,
        errors: f.errors as u64,
        p50_ms: f.p50_ms,
        p99_ms: f.p99_ms,
    }
}

/// The label of every POP together in per-second figures.
pub use routing::drills::ALL_POPS;

/// Every POP the load shopped at, in name order.
pub fn pops(outcome: &Outcome) -> Vec<&str> {
    let mut pops: Vec<&str> = outcome.records.iter().map(|r| r.pop.as_str()).collect();
    pops.sort_unstable();
    pops.dedup();
    pops
}

/// What the report says, in order.
pub fn blocks(outcome: &Outcome) -> Vec<Block> {
    let o = &outcome.options;
    let mut out = Vec::new();
    let verdict = if outcome.passed() { "PASSED" } else { "FAILED" };
    out.push(Block::Title(format!(
        "Drill: {:?} of {} — {verdict}",
        o.scenario, o.region
    )));
    out.push(Block::Paragraph {
        lead: Some("Hypothesis.".into()),
        text: outcome.hypothesis.clone(),
    });
    out.push(Block::Paragraph {
        lead: None,
        text: format!(
            "Load: {} shoppers at {} requests/s for {:.0} s (seed {}); fault at {:.1} s for {:.1} s; cluster recovery pause {:.1} s.",
            o.shoppers,
            o.rate,
            o.duration.as_secs_f64(),
            o.seed,
            o.fault_at.as_secs_f64(),
            o.fault_for.as_secs_f64(),
            o.cluster_recovery.as_secs_f64()
        ),
    });
    out.push(Block::Heading("Timeline".into()));
    out.push(Block::Table {
        head: vec!["at".into(), "what".into()],
        numeric: vec![true, false],
        rows: outcome
            .timeline
            .iter()
            .map(|m| {
                vec![
                    format!("{:.3} s", m.at_ms as f64 / 1e3).into(),
                    m.what.clone().into(),
                ]
            })
            .collect(),
    });
    out.push(Block::Paragraph {
        lead: None,
        text: format!(
            "Detection (fault → the table shows the region degraded or not serving): {}.",
            ms(outcome.detection_ms)
        ),
    });
    out.push(Block::Paragraph {
        lead: None,
        text: format!(
            "Fault → first successful write for the region's shard (a probe shopper creating a cart through the shard's POP every 100 ms from the fault on): {}.",
            ms(outcome.first_write_ms)
        ),
    });
    out.push(Block::Heading("Shoppers".into()));
    out.push(Block::Charts);
    let all = Figures::of(outcome.records.iter());
    let mut rows: Vec<Vec<Cell>> = phases(outcome)
        .iter()
        .map(|(name, f)| figures_row(name, f))
        .collect();
    rows.push(figures_row("overall", &all));
    out.push(figures_table("phase", rows));

    let mut actions: Vec<super::load::Action> = outcome.records.iter().map(|r| r.action).collect();
    actions.sort_unstable();
    actions.dedup();
    let fault = o.fault_at.as_millis() as u64;
    let healed = fault + o.fault_for.as_millis() as u64;
    let mut rows = Vec::new();
    for action in actions {
        let f = Figures::of(
            outcome
                .records
                .iter()
                .filter(|r| r.action == action && r.at_ms >= fault && r.at_ms < healed),
        );
        if f.requests == 0 {
            continue;
        }
        let name = crate::wire_name(action);
        rows.push(figures_row(&name, &f));
    }
    out.push(figures_table("action (during the fault)", rows));
    let rows = pops(outcome)
        .into_iter()
        .map(|pop| {
            figures_row(
                pop,
                &Figures::of(outcome.records.iter().filter(|r| r.pop == pop)),
            )
        })
        .collect();
    out.push(figures_table("POP", rows));

    // What the errors were: each action's failed answers by status, and
    // when (0: no answer at all).
    let mut errors: std::collections::BTreeMap<(String, u16), (usize, u64, u64)> =
        std::collections::BTreeMap::new();
    for r in outcome.records.iter().filter(|r| r.error()) {
        let name = crate::wire_name(r.action);
        let e = errors
            .entry((name, r.status))
            .or_insert((0, r.at_ms, r.at_ms));
        e.0 += 1;
        e.1 = e.1.min(r.at_ms);
        e.2 = e.2.max(r.at_ms);
    }
    if !errors.is_empty() {
        out.push(Block::Table {
            head: ["errors: action", "status", "count", "first at", "last at"]
                .map(str::to_owned)
                .to_vec(),
            numeric: vec![false, true, true, true, true],
            rows: errors
                .into_iter()
                .map(|((action, status), (n, first, last))| {
                    vec![
                        action.into(),
                        (if status == 0 {
                            "no answer".to_owned()
                        } else {
                            status.to_string()
                        })
                        .into(),
                        n.to_string().into(),
                        format!("{:.3} s", first as f64 / 1e3).into(),
                        format!("{:.3} s", last as f64 / 1e3).into(),
                    ]
                })
                .collect(),
        });
    }

    if !outcome.journeys.is_empty() {
        out.push(Block::Heading("A catalog change's journey".into()));
        out.push(Block::Paragraph {
            lead: None,
            text: format!(
                "From an admin's write at the catalog's home to each POP serving the new version ({} changes, each to a product the POP held fresh). Target: the modelled one-way delay to the POP + 150 ms.",
                o.catalog_changes
            ),
        });
        let show = |v: Option<f64>| v.map_or_else(|| "missed".into(), |v| format!("{v:.0} ms"));
        let rows = outcome
            .journeys
            .iter()
            .map(|j| {
                let p50 = super::journey::quantile(&j.times_ms, 0.5);
                let p99 = super::journey::quantile(&j.times_ms, 0.99);
                let met = p99.is_some_and(|p| p <= j.target_ms);
                vec![
                    j.pop.clone().into(),
                    show(p50).into(),
                    show(p99).into(),
                    format!("{:.0} ms", j.target_ms).into(),
                    (if met { "yes" } else { "no" }).into(),
                ]
            })
            .collect();
        out.push(Block::Table {
            head: ["POP", "p50", "p99", "target", "met"]
                .map(str::to_owned)
                .to_vec(),
            numeric: vec![false, true, true, true, false],
            rows,
        });
    }
    out.push(Block::Heading(
        "Invariants (checked against the data)".into(),
    ));
    out.push(Block::Table {
        head: ["invariant", "expected", "found", "holds"]
            .map(str::to_owned)
            .to_vec(),
        numeric: vec![false; 4],
        rows: outcome
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.name.clone().into(),
                    c.expected.clone().into(),
                    c.found.clone().into(),
                    Cell {
                        text: if c.holds { "yes" } else { "NO" }.into(),
                        strong: !c.holds,
                    },
                ]
            })
            .collect(),
    });
    out
}

/// Writes `report.md` and `report.html` into `dir` (created if missing):
/// their paths.
pub fn write(outcome: &Outcome, dir: &std::path::Path) -> anyhow::Result<[std::path::PathBuf; 2]> {
    write_texts(dir, &markdown(outcome), &super::html::page(outcome)?)
}

/// Writes a rendered report (`report.md`, `report.html`) into `dir`.
pub fn write_texts(
    dir: &std::path::Path,
    markdown: &str,
    html: &str,
) -> anyhow::Result<[std::path::PathBuf; 2]> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown).with_context(|| format!("writing {}", md.display()))?;
    let page = dir.join("report.html");
    std::fs::write(&page, html).with_context(|| format!("writing {}", page.display()))?;
    Ok([md, page])
}

/// The report as Markdown.
pub fn markdown(outcome: &Outcome) -> String {
    let mut out = String::new();
    for block in blocks(outcome) {
        match block {
            Block::Title(t) => {
                let _ = writeln!(out, "# {t}\n");
            }
            Block::Heading(t) => {
                let _ = writeln!(out, "## {t}\n");
            }
            Block::Paragraph { lead, text } => match lead {
                Some(lead) => {
                    let _ = writeln!(out, "**{lead}** {text}\n");
                }
                None => {
                    let _ = writeln!(out, "{text}\n");
                }
            },
            Block::Table {
                head,
                numeric,
                rows,
            } => {
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let align: Vec<&str> = numeric
                    .iter()
                    .map(|n| if *n { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(out, "|{}|", align.join("|"));
                for row in rows {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|c| {
                            let text = c.text.replace('|', "\\|");
                            if c.strong {
                                format!("**{text}**")
                            } else {
                                text
                            }
                        })
                        .collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
            Block::Charts => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::load::Action;

    fn record(latency_ms: f64, status: u16) -> Record {
        Record {
            at_ms: 0,
            latency_ms,
            shopper: 0,
            shard: "us".into(),
            pop: "iad".into(),
            action: Action::Browse,
            status,
            key: None,
            cart_id: None,
            cart_version: None,
            order_id: None,
            order_status: None,
            shopper_id: None,
        }
    }

    #[test]
    fn per_second_buckets_by_start_and_keeps_idle_seconds() {
        let mut records = [record(10.0, 200), record(20.0, 503), record(30.0, 200)];
        records[1].at_ms = 999;
        records[2].at_ms = 2_500;
        let seconds = per_second(records.iter(), 4, "dub");
        assert_eq!(seconds.len(), 4);
        assert_eq!((seconds[0].requests, seconds[0].errors), (2, 1));
        assert_eq!(seconds[1].requests, 0);
        assert_eq!((seconds[2].requests, seconds[2].p50_ms), (1, 30.0));
        assert_eq!(seconds[3].requests, 0);
        assert!(seconds.iter().all(|s| s.pop == "dub"));
    }

    #[test]
    fn markdown_and_html_say_the_same_and_mark_a_broken_invariant() {
        let outcome = crate::drill::tests::outcome(false);
        let md = markdown(&outcome);
        let page = crate::drill::html::page(&outcome).expect("the page");
        assert!(md.contains("— FAILED"), "{md}");
        assert!(md.contains("| **NO** |"), "{md}");
        // The errors, by action and status, with when they happened.
        assert!(
            md.contains("| add_to_cart | 503 | 2 | 4.000 s | 4.500 s |"),
            "{md}"
        );
        assert!(
            md.contains("| browse | 503 | 8 | 4.100 s | 4.900 s |"),
            "{md}"
        );
        assert!(page.contains("<strong>NO</strong>"));
        for block in blocks(&outcome) {
            if let Block::Table { rows, .. } = block {
                for row in rows {
                    for cell in row {
                        assert!(md.contains(&cell.text), "{} not in the Markdown", cell.text);
                        assert!(
                            page.contains(&crate::drill::html::escape(&cell.text)),
                            "{} not in the page",
                            cell.text
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn figures_count_errors_and_take_percentiles() {
        let mut records: Vec<Record> = (1..=100).map(|i| record(i as f64, 200)).collect();
        records.push(record(1000.0, 503));
        records.push(record(5.0, 0));
        records.push(record(5.0, 429));
        records.push(record(5.0, 409));
        let f = Figures::of(records.iter());
        assert_eq!(f.requests, 104);
        assert_eq!(f.errors, 3);
        assert!((45.0..=55.0).contains(&f.p50_ms), "{f:?}");
        assert!(f.p99_ms >= 99.0, "{f:?}");
        assert_eq!(Figures::of(std::iter::empty()).error_rate(), 0.0);
    }
}
