//! One JSON line per run, target checks, and the closing markdown table.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// One target of the table, checked against a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is measured (`lost`, `latency_p99_ms`, …).
    pub name: String,
    /// The target, as text (`≤ 8 ms`).
    pub target: String,
    /// The measured value.
    pub measured: f64,
    /// Whether the measurement meets the target.
    pub target_met: bool,
}

impl Check {
    /// Met when `measured <= limit`.
    pub fn at_most(name: &str, measured: f64, limit: f64, unit: &str) -> Self {
        Self::new(
            name,
            format!("≤ {limit} {unit}"),
            measured,
            measured <= limit,
        )
    }

    /// Met when `measured >= limit`.
    pub fn at_least(name: &str, measured: f64, limit: f64, unit: &str) -> Self {
        Self::new(
            name,
            format!("≥ {limit} {unit}"),
            measured,
            measured >= limit,
        )
    }

    /// Met when `measured == want`.
    pub fn equals(name: &str, measured: u64, want: u64) -> Self {
        Self::new(name, format!("= {want}"), measured as f64, measured == want)
    }

    fn new(name: &str, target: String, measured: f64, met: bool) -> Self {
        Self {
            name: name.to_owned(),
            target: target.trim_end().to_owned(),
            measured,
            target_met: met,
        }
    }
}

/// The result of one run: printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `conns`, `fanout`, `fanout-max` or `churn`.
    pub scenario: String,
    /// What was asked for.
    pub params: Value,
    /// What was measured.
    pub results: Value,
    /// Each target with its measurement.
    pub targets: Vec<Check>,
    /// True when every target is met (true when there are none).
    pub target_met: bool,
    /// When the run ended, in seconds since the Unix epoch.
    pub unix_time: u64,
}

impl Report {
    /// Builds a report from typed parameters and results.
    pub fn new(
        scenario: &str,
        params: &impl Serialize,
        results: &impl Serialize,
        targets: Vec<Check>,
    ) -> Result<Self> {
        Ok(Self {
            scenario: scenario.to_owned(),
            params: serde_json::to_value(params).context("serialising parameters")?,
            results: serde_json::to_value(results).context("serialising results")?,
            target_met: targets.iter().all(|c| c.target_met),
            targets,
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }

    /// The report as one line of JSON.
    pub fn json_line(&self) -> Result<String> {
        serde_json::to_string(self).context("serialising the report")
    }

    /// A label for the table: the scenario and its size.
    pub fn label(&self) -> String {
        let p = &self.params;
        let num = |k: &str| p.get(k).and_then(Value::as_f64).map(|v| v.to_string());
        match self.scenario.as_str() {
            "conns" => {
                let mut s = format!("conns {}", num("count").unwrap_or_default());
                if let Some(subs) = p.pointer("/fanout/subscribers").and_then(Value::as_u64) {
                    s.push_str(&format!(" (+ fanout {subs} subs)"));
                }
                s
            }
            "fanout" => format!(
                "fanout {} subs × {} ev/s × {} s",
                num("subscribers").unwrap_or_default(),
                num("rate").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
            "fanout-max" => format!(
                "fanout-max {} subs × {} s",
                num("subscribers").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
            "churn" => format!("churn {} cycles", num("cycles").unwrap_or_default()),
            other => other.to_owned(),
        }
    }
}

/// A markdown table with one row per target of every report.
pub fn markdown_table(reports: &[Report]) -> String {
    let mut out =
        String::from("| scenario | measure | target | measured | met |\n|---|---|---|---|---|\n");
    for report in reports {
        let label = report.label();
        if report.targets.is_empty() {
            out.push_str(&format!("| {label} | — | — | — | — |\n"));
        }
        for check in &report.targets {
            out.push_str(&format!(
                "| {label} | {} | {} | {} | {} |\n",
                check.name,
                check.target,
                format_number(check.measured),
                if check.target_met { "yes" } else { "**no**" }
            ));
        }
    }
    out
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_compare_both_ways() {
        assert!(Check::at_most("p99", 7.9, 8.0, "ms").target_met);
        assert!(!Check::at_most("p99", 8.1, 8.0, "ms").target_met);
        assert!(Check::at_least("rate", 125_000.0, 125_000.0, "/s").target_met);
        assert!(!Check::equals("lost", 1, 0).target_met);
    }

    #[test]
    fn report_is_one_line_with_overall_verdict() {
        let params = serde_json::json!({"subscribers": 2, "rate": 10.0, "duration_s": 1.0});
        let r = Report::new(
            "fanout",
            &params,
            &serde_json::json!({"lost": 1}),
            vec![
                Check::equals("lost", 1, 0),
                Check::at_most("p99", 1.0, 8.0, "ms"),
            ],
        )
        .expect("report");
        let line = r.json_line().expect("json");
        assert!(!line.contains('\n'));
        assert!(!r.target_met);
        let table = markdown_table(&[r]);
        assert!(
            table.contains("| fanout 2 subs × 10 ev/s × 1 s | lost | = 0 | 1 | **no** |"),
            "{table}"
        );
    }
}
