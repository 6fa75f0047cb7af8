//! What the subcommands print for people: aligned tables and one-line
//! summaries built from the hub's JSON answers. Missing fields print as `-`, so
//! an older or newer hub still gets a readable table.

use serde_json::{Map, Value};

/// A plain-text table: a header row, then rows, columns padded to fit.
struct Table {
    header: Vec<&'static str>,
    /// Which columns are right-aligned (numbers).
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            header: columns.iter().map(|(name, _)| *name).collect(),
            numeric: columns.iter().map(|(_, numeric)| *numeric).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .zip(&self.numeric)
                    .map(|((cell, &w), &numeric)| {
                        if numeric {
                            format!("{cell:>w$}")
                        } else {
                            format!("{cell:<w$}")
                        }
                    })
                    .collect();
                cells.join("  ").trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A JSON value as a table cell: strings bare, absent as `-`.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        Some(other) => other.to_string(),
    }
}

/// Seconds as `1d 2h 3m 4s`, from the largest non-zero unit.
pub fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn uptime(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64)
        .map_or_else(|| "-".into(), duration)
}

fn object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// `status`: node summary, then SOCKETS, ROOMS and (in a cluster) NODES.
pub fn status(s: &Value) -> String {
    let mut out = Vec::new();
    let summary = [
        ("node", cell(s.get("node"))),
        ("active", cell(s.get("active"))),
        ("uptime", uptime(s.get("uptime_s"))),
        ("sockets", cell(s.get("total_sockets"))),
    ];
    out.push(
        summary
            .iter()
            .map(|(k, v)| format!("{k:<8} {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );

    let by_type = object(s, "sockets_by_type");
    let endpoints = object(s, "ws_endpoints");
    let mut types: Vec<&String> = by_type
        .into_iter()
        .chain(endpoints)
        .flat_map(Map::keys)
        .collect();
    types.sort_by_key(|t| (t.as_str() != "connect", t.as_str()));
    types.dedup();
    let mut sockets = Table::new(&[("TYPE", false), ("COUNT", true), ("PATH", false)]);
    for t in types {
        sockets.row(vec![
            t.clone(),
            by_type
                .and_then(|m| m.get(t))
                .map_or_else(|| "0".into(), |v| cell(Some(v))),
            cell(endpoints.and_then(|m| m.get(t))),
        ]);
    }
    out.push(format!("SOCKETS\n{}", sockets.render()));

    let mut rooms = Table::new(&[("ROOM", false), ("SUBSCRIBERS", true)]);
    for (room, n) in object(s, "rooms").into_iter().flatten() {
        rooms.row(vec![room.clone(), cell(Some(n))]);
    }
    out.push(format!("ROOMS\n{}", rooms.render()));

    if let Some(nodes) = object(s, "nodes") {
        let mut table = Table::new(&[
            ("NODE", false),
            ("ACTIVE", false),
            ("SOCKETS", true),
            ("UPTIME", true),
        ]);
        for (id, n) in nodes {
            table.row(vec![
                id.clone(),
                cell(n.get("active")),
                cell(n.get("total_sockets")),
                uptime(n.get("uptime_s")),
            ]);
        }
        out.push(format!("NODES\n{}", table.render()));
    }
    out.join("\n\n")
}

/// `rooms`: one row per room of `GET /api/rooms`.
pub fn rooms(rooms: &[Value]) -> String {
    if rooms.is_empty() {
        return "no rooms".into();
    }
    let mut table = Table::new(&[
        ("ROOM", false),
        ("SUBSCRIBERS", true),
        ("SEQ", true),
        ("HISTORY", true),
        ("EPOCH", false),
    ]);
    for r in rooms {
        table.row(
            ["room", "subscribers", "seq", "history", "epoch"]
                .iter()
                .map(|k| cell(r.get(*k)))
                .collect(),
        );
    }
    table.render()
}

/// `publish`: the acknowledgement in one line.
pub fn published(ack: &Value) -> String {
    if ack.get("duplicate").and_then(Value::as_bool) == Some(true) {
        return format!(
            "already published to {} with this idempotency key: seq {} (epoch {}); nothing sent again",
            cell(ack.get("room")),
            cell(ack.get("seq")),
            cell(ack.get("epoch")),
        );
    }
    let delivered = ack.get("delivered").and_then(Value::as_u64);
    format!(
        "published to {}: seq {} (epoch {}), queued for {}",
        cell(ack.get("room")),
        cell(ack.get("seq")),
        cell(ack.get("epoch")),
        match delivered {
            Some(1) => "1 session".to_string(),
            Some(n) => format!("{n} sessions"),
            None => "- sessions".to_string(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_start_at_the_largest_unit() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3600), "1h 0m 0s");
        assert_eq!(duration(90_061), "1d 1h 1m 1s");
    }

    #[test]
    fn status_lists_sockets_rooms_and_nodes() {
        let s = json!({"active": true, "total_sockets": 2,
            "sockets_by_type": {"connect": 1, "alerts": 1, "hotspots": 0},
            "rooms": {"alerts": 2, "hotspots": 1, "$status": 0},
            "timestamp": "2026-11-22T15:55:09.123Z",
            "ws_endpoints": {"connect": "/ws", "alerts": "/ws/alerts", "hotspots": "/ws/hotspots"},
            "node": "web-1-4242", "uptime_s": 3600,
            "nodes": {"web-1-4242": {"total_sockets": 2, "active": true, "uptime_s": 60},
                      "web-2-17": {"total_sockets": 0}}});
        let text = status(&s);
        let expected = "\
node     web-1-4242
active   yes
uptime   1h 0m 0s
sockets  2

SOCKETS
TYPE      COUNT  PATH
connect       1  /ws
alerts        1  /ws/alerts
hotspots      0  /ws/hotspots

ROOMS
ROOM      SUBSCRIBERS
$status             0
alerts              2
hotspots            1

NODES
NODE        ACTIVE  SOCKETS  UPTIME
web-1-4242  yes           2   1m 0s
web-2-17    -             0       -";
        assert_eq!(text, expected);
    }

    #[test]
    fn status_without_nodes_has_no_nodes_table_and_survives_missing_fields() {
        let text = status(&json!({"node": "n"}));
        assert!(!text.contains("NODES"), "{text}");
        assert!(text.contains("uptime   -"), "{text}");
    }

    #[test]
    fn rooms_and_acks_read_well() {
        let text = rooms(&[json!({"room": "alerts", "subscribers": 3, "epoch": "e-2",
                                  "seq": 41, "history": 41})]);
        assert_eq!(
            text,
            "ROOM    SUBSCRIBERS  SEQ  HISTORY  EPOCH\nalerts            3   41       41  e-2"
        );
        assert_eq!(rooms(&[]), "no rooms");
        let ack = json!({"room": "alerts", "epoch": "e-2", "seq": 1, "delivered": 1});
        assert_eq!(
            published(&ack),
            "published to alerts: seq 1 (epoch e-2), queued for 1 session"
        );
    }
}
