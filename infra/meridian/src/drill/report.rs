//! A drill's report as Markdown: the hypothesis and parameters, the
//! timeline, the figures before, during and after the fault (overall and
//! per POP), the invariants and the verdict.

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

/// The report.
pub fn markdown(outcome: &Outcome) -> String {
    let o = &outcome.options;
    let mut out = String::new();
    let verdict = if outcome.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(
        out,
        "# Drill: {:?} of {} — {verdict}\n",
        o.scenario, o.region
    );
    let _ = writeln!(out, "**Hypothesis.** {}\n", outcome.hypothesis);
    let _ = writeln!(
        out,
        "Load: {} shoppers at {} requests/s for {:.0} s (seed {}); fault at {:.1} s for {:.1} s; cluster recovery pause {:.1} s.\n",
        o.shoppers,
        o.rate,
        o.duration.as_secs_f64(),
        o.seed,
        o.fault_at.as_secs_f64(),
        o.fault_for.as_secs_f64(),
        o.cluster_recovery.as_secs_f64()
    );
    let _ = writeln!(out, "## Timeline\n\n| at | what |\n|---:|---|");
    for m in &outcome.timeline {
        let _ = writeln!(out, "| {:.3} s | {} |", m.at_ms as f64 / 1e3, m.what);
    }
    let _ = writeln!(
        out,
        "\nDetection (fault → the table shows the region degraded or not serving): {}.  \nFault → first successful write for the region's shard: {}.\n",
        ms(outcome.detection_ms),
        ms(outcome.first_write_ms)
    );
    let _ = writeln!(
        out,
        "## Shoppers\n\n| phase | requests | errors | error rate | p50 | p99 |\n|---|---:|---:|---:|---:|---:|"
    );
    let all = Figures::of(outcome.records.iter());
    for (name, f) in phases(outcome)
        .iter()
        .chain(std::iter::once(&("overall", all)))
    {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.2} % | {:.1} ms | {:.1} ms |",
            f.requests,
            f.errors,
            f.error_rate() * 100.0,
            f.p50_ms,
            f.p99_ms
        );
    }
    let mut actions: Vec<super::load::Action> = outcome.records.iter().map(|r| r.action).collect();
    actions.sort_unstable();
    actions.dedup();
    let fault = outcome.options.fault_at.as_millis() as u64;
    let healed = fault + outcome.options.fault_for.as_millis() as u64;
    let _ = writeln!(
        out,
        "\n| action (during the fault) | requests | errors | error rate | p50 | p99 |\n|---|---:|---:|---:|---:|---:|"
    );
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
        let name = serde_json::to_value(action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.2} % | {:.1} ms | {:.1} ms |",
            f.requests,
            f.errors,
            f.error_rate() * 100.0,
            f.p50_ms,
            f.p99_ms
        );
    }
    let mut pops: Vec<&str> = outcome.records.iter().map(|r| r.pop.as_str()).collect();
    pops.sort_unstable();
    pops.dedup();
    let _ = writeln!(
        out,
        "\n| POP | requests | errors | error rate | p50 | p99 |\n|---|---:|---:|---:|---:|---:|"
    );
    for pop in pops {
        let f = Figures::of(outcome.records.iter().filter(|r| r.pop == pop));
        let _ = writeln!(
            out,
            "| {pop} | {} | {} | {:.2} % | {:.1} ms | {:.1} ms |",
            f.requests,
            f.errors,
            f.error_rate() * 100.0,
            f.p50_ms,
            f.p99_ms
        );
    }
    if !outcome.journeys.is_empty() {
        let _ = writeln!(
            out,
            "\n## A catalog change's journey\n\nFrom an admin's write at the catalog's home to each POP serving the new version ({} changes, each to a product the POP held fresh). Target: the modelled one-way delay to the POP + 150 ms.\n\n| POP | p50 | p99 | target | met |\n|---|---:|---:|---:|---|",
            outcome.options.catalog_changes
        );
        for j in &outcome.journeys {
            let p50 = super::journey::quantile(&j.times_ms, 0.5);
            let p99 = super::journey::quantile(&j.times_ms, 0.99);
            let show = |v: Option<f64>| v.map_or_else(|| "missed".into(), |v| format!("{v:.0} ms"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} ms | {} |",
                j.pop,
                show(p50),
                show(p99),
                j.target_ms,
                if p99.is_some_and(|p| p <= j.target_ms) {
                    "yes"
                } else {
                    "no"
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Invariants (checked against the data)\n\n| invariant | expected | found | holds |\n|---|---|---|---|"
    );
    for c in &outcome.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.name,
            c.expected,
            c.found,
            if c.holds { "yes" } else { "**NO**" }
        );
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
