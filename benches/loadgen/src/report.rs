//! One JSON line per run, target checks, and the closing markdown table.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::hub::Storage;

/// The target text of a [`Check::reported`] measurement.
pub const NO_TARGET: &str = "—";

/// One target of the issue's table, checked against a measurement.
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

    /// A measurement with no target, shown in the table for reference (always met).
    pub fn reported(name: &str, measured: f64) -> Self {
        Self::new(name, NO_TARGET.to_owned(), measured, true)
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
    /// `conns`, `fanout`, `fanout-max`, `fanout-max-keyed`, `keyed-replay`,
    /// `keyed-vs-plain`, `churn`, `publish-rate`, `publish-rtt`, `restart`,
    /// `cluster` or `cluster-max`.
    pub scenario: String,
    /// Where the hubs the harness started kept their rooms; `null` for a hub
    /// given with `--url` (its storage is its own).
    pub storage: Option<Storage>,
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
            storage: None,
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

    /// The same report, naming the storage of the hubs it ran against.
    pub fn with_storage(mut self, storage: Option<Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// The report as one line of JSON.
    pub fn json_line(&self) -> Result<String> {
        serde_json::to_string(self).context("serialising the report")
    }

    /// A label for the table: the scenario and its size, and the transport
    /// when it is not WebSocket (`… over SSE`).
    pub fn label(&self) -> String {
        let label = self.base_label();
        let p = &self.params;
        let mut label = match p.get("transport").and_then(Value::as_str) {
            Some("sse") => format!("{label} over SSE"),
            _ => label,
        };
        if p.get("subscribe").and_then(Value::as_bool) == Some(true)
            && p.get("transport").and_then(Value::as_str) != Some("sse")
        {
            label.push_str(" subscribed");
        }
        label
    }

    fn base_label(&self) -> String {
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
            "fanout-max-keyed" => format!(
                "fanout-max keyed ({} keys) {} subs × {} s",
                num("keys").unwrap_or_default(),
                num("subscribers").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
            "fanout-keyed" => format!(
                "fanout keyed ({} keys) {} subs × {} ev/s × {} s",
                num("keys").unwrap_or_default(),
                num("subscribers").unwrap_or_default(),
                num("rate").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
            "keyed-vs-plain" => format!(
                "keyed-vs-plain fanout-max {} subs × {} s ({} keys)",
                num("subscribers").unwrap_or_default(),
                num("duration_s").unwrap_or_default(),
                num("keys").unwrap_or_default()
            ),
            "keyed-replay" => format!(
                "keyed-replay {} keys × {} subs",
                num("keys").unwrap_or_default(),
                num("subscribers").unwrap_or_default()
            ),
            "churn" => format!("churn {} cycles", num("cycles").unwrap_or_default()),
            "publish-rate" | "publish-rtt" => format!(
                "{} {} ev/s × {} s ({} in flight, {} subs)",
                self.scenario,
                num("rate").unwrap_or_default(),
                num("duration_s").unwrap_or_default(),
                num("publishers").unwrap_or_default(),
                num("subscribers").unwrap_or_default()
            ),
            "restart" => format!(
                "restart {} rooms × {} events",
                num("rooms").unwrap_or_default(),
                num("events_per_room").unwrap_or_default()
            ),
            "cluster" => format!(
                "cluster {} {} subs × {} ev/s × {} s",
                p.get("topology").and_then(Value::as_str).unwrap_or("?"),
                num("subscribers").unwrap_or_default(),
                num("rate").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
            "cluster-max" => format!(
                "cluster-max {} {} subs × {} s",
                p.get("topology").and_then(Value::as_str).unwrap_or("?"),
                num("subscribers").unwrap_or_default(),
                num("duration_s").unwrap_or_default()
            ),
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
                match (check.target == NO_TARGET, check.target_met) {
                    (true, _) => NO_TARGET,
                    (false, true) => "yes",
                    (false, false) => "**no**",
                }
            ));
        }
    }
    out
}

/// A markdown table comparing `cluster` / `cluster-max` runs, one row per run.
pub fn cluster_table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| load | hubs | subs per node | published | deliveries/s | latency p50 / p99 / p99.9 ms \
         | p99 same node / other node ms | publish rtt p50 / p99 ms \
         | lost / dup / reordered / unexpected | CPU hubs / redis / loadgen / machine \
         | hub CPU µs per delivery |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for report in reports {
        let r = &report.results;
        let p = &report.params;
        let f = |path: &str| r.pointer(path).and_then(Value::as_f64);
        let ms = |path: &str| f(path).map_or("–".to_owned(), |x| format!("{x:.2}"));
        let int = |path: &str| f(path).map_or("–".to_owned(), |x| format!("{x:.0}"));
        let cores = |path: &str| f(path).map_or("–".to_owned(), |x| format!("{x:.2}"));
        let load = match p.get("rate").and_then(Value::as_f64) {
            Some(rate) => format!(
                "{} ev/s × {} s",
                format_number(rate),
                p.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0)
            ),
            None => format!(
                "flat out × {} s",
                p.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0)
            ),
        };
        // Hub CPU time per delivered event: cores ÷ deliveries per second.
        let per_delivery = match (f("/cpu/hub_cores"), f("/deliveries_per_s")) {
            (Some(cores), Some(rate)) if rate > 0.0 => format!("{:.2}", cores * 1e6 / rate),
            _ => "–".to_owned(),
        };
        let per_node = match r.get("subscribers_per_node").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" + "),
            None => int("/subscribers_connected"),
        };
        out.push_str(&format!(
            "| {load} | {} | {per_node} | {} | {} | {} / {} / {} | {} / {} | {} / {} | {} / {} / {} / {} | {} / {} / {} / {} | {per_delivery} |\n",
            r.get("topology").and_then(Value::as_str).unwrap_or("?"),
            int("/published"),
            int("/deliveries_per_s"),
            ms("/latency/p50_ms"),
            ms("/latency/p99_ms"),
            ms("/latency/p999_ms"),
            ms("/latency_same_node/p99_ms"),
            ms("/latency_cross_node/p99_ms"),
            ms("/publish_rtt/p50_ms"),
            ms("/publish_rtt/p99_ms"),
            int("/lost"),
            int("/duplicates"),
            int("/out_of_order"),
            int("/unexpected"),
            cores("/cpu/hub_cores"),
            cores("/cpu/redis_cores"),
            cores("/cpu/loadgen_cores"),
            cores("/cpu/machine_cores"),
        ));
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

    #[test]
    fn labels_name_the_transport_unless_websocket() {
        let label = |params: serde_json::Value, scenario: &str| {
            Report::new(scenario, &params, &serde_json::json!({}), vec![])
                .expect("report")
                .label()
        };
        let fanout = serde_json::json!({"subscribers": 2, "rate": 10.0, "duration_s": 1.0,
                                        "transport": "sse"});
        assert_eq!(
            label(fanout, "fanout"),
            "fanout 2 subs × 10 ev/s × 1 s over SSE"
        );
        let ws = serde_json::json!({"subscribers": 3, "duration_s": 2.0, "transport": "websocket"});
        assert_eq!(label(ws, "fanout-max"), "fanout-max 3 subs × 2 s");
        let sub = serde_json::json!({"count": 5, "transport": "websocket", "subscribe": true});
        assert_eq!(label(sub, "conns"), "conns 5 subscribed");
        let sse = serde_json::json!({"count": 5, "transport": "sse", "subscribe": false});
        assert_eq!(label(sse, "conns"), "conns 5 over SSE");
    }

    #[test]
    fn reported_measures_have_no_target_and_storage_is_in_the_line() {
        let params = serde_json::json!({"rooms": 5, "events_per_room": 2});
        let r = Report::new(
            "restart",
            &params,
            &serde_json::json!({}),
            vec![Check::reported("sigterm_restart_ms", 12.5)],
        )
        .expect("report")
        .with_storage(Some(Storage::Durable { fsync: true }));
        assert!(r.target_met);
        let line = r.json_line().expect("json");
        assert!(
            line.contains(r#""storage":{"mode":"durable","fsync":true}"#),
            "{line}"
        );
        let table = markdown_table(&[r]);
        assert!(
            table.contains("| restart 5 rooms × 2 events | sigterm_restart_ms | — | 12.500 | — |"),
            "{table}"
        );
    }

    #[test]
    fn cluster_table_has_one_row_per_run() {
        let params = serde_json::json!({"topology": "cluster-2", "subscribers": 4,
                                        "rate": 100.0, "duration_s": 5.0});
        let results = serde_json::json!({
            "topology": "cluster-2", "subscribers_per_node": [2, 2], "published": 500,
            "deliveries_per_s": 1999.6, "lost": 0, "duplicates": 0, "out_of_order": 0,
            "unexpected": 0,
            "latency": {"p50_ms": 1.234, "p99_ms": 5.0, "p999_ms": 7.5},
            "latency_same_node": {"p99_ms": 4.9}, "latency_cross_node": {"p99_ms": 5.1},
            "publish_rtt": {"p50_ms": 0.5, "p99_ms": 1.0},
            "cpu": {"hub_cores": 0.5, "redis_cores": 0.1, "loadgen_cores": 0.3,
                    "machine_cores": 1.1}
        });
        let r = Report::new("cluster", &params, &results, vec![]).expect("report");
        assert_eq!(r.label(), "cluster cluster-2 4 subs × 100 ev/s × 5 s");
        let table = cluster_table(&[r]);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(
            table.contains(
                "| 100 ev/s × 5 s | cluster-2 | 2 + 2 | 500 | 2000 | 1.23 / 5.00 / 7.50 \
                 | 4.90 / 5.10 | 0.50 / 1.00 | 0 / 0 / 0 / 0 | 0.50 / 0.10 / 0.30 / 1.10 | 250.05 |"
            ),
            "{table}"
        );
    }
}
