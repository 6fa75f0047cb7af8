//! The serving process's log output: `env_logger`, filtered by `RUST_LOG`
//! (default `info`), in one of two formats chosen by `HUB_LOG_FORMAT`:
//!
//! - `text` (default, also when unset): env_logger's human format;
//! - `json`: one JSON object per line,
//!   `{"ts":"2026-11-22T15:55:09.123Z","level":"info","target":"realtime_hub::server","msg":"..."}`,
//!   for log shippers. The message is escaped by serde_json, so a line is
//!   always one valid object whatever the message contains.
//!
//! The format changes nothing about *what* is logged: the hub never logs
//! headers, and the access log redacts secret query values (`http::redact_query`).

use std::io::Write;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

/// The environment variable that picks the format.
pub const FORMAT_VAR: &str = "HUB_LOG_FORMAT";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// env_logger's default, for people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

impl Format {
    /// The format named by `value` (case-insensitive), or `None` if unknown.
    pub fn parse(value: &str) -> Option<Format> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" | "human" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// One JSON log line's fields, in output order.
#[derive(Serialize)]
struct Line<'a> {
    ts: &'a str,
    level: &'a str,
    target: &'a str,
    msg: &'a str,
}

/// One log record as a JSON object (no trailing newline).
pub fn json_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
    let level = level.as_str().to_ascii_lowercase();
    let line = Line {
        ts,
        level: &level,
        target,
        msg,
    };
    // Serializing four string fields cannot fail; keep a valid line if it did.
    serde_json::to_string(&line).unwrap_or_else(|_| {
        r#"{"ts":"","level":"error","target":"realtime_hub","msg":"unloggable record"}"#.into()
    })
}

/// Installs the global logger: `RUST_LOG` (default `info`) and the format from
/// `HUB_LOG_FORMAT`. An unknown format falls back to text with a warning.
pub fn init() {
    let requested = std::env::var(FORMAT_VAR).unwrap_or_default();
    let format = Format::parse(&requested);
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == Some(Format::Json) {
        builder.format(|buf, record| {
            let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let msg = record.args().to_string();
            writeln!(
                buf,
                "{}",
                json_line(&ts, record.level(), record.target(), &msg)
            )
        });
    }
    builder.init();
    if format.is_none() {
        log::warn!("{FORMAT_VAR}={requested:?} is not a known log format (text, json); using text");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse(" JSON "), Some(Format::Json));
        assert_eq!(Format::parse(""), Some(Format::Text));
        assert_eq!(Format::parse("text"), Some(Format::Text));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn json_lines_escape_anything() {
        let line = json_line(
            "2026-11-22T15:55:09.123Z",
            log::Level::Warn,
            "realtime_hub::session",
            "a \"quoted\"\nmulti-line \u{1} message",
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "realtime_hub::session");
        assert_eq!(v["msg"], "a \"quoted\"\nmulti-line \u{1} message");
        assert_eq!(
            line,
            r#"{"ts":"2026-11-22T15:55:09.123Z","level":"warn","target":"realtime_hub::session","msg":"a \"quoted\"\nmulti-line \u0001 message"}"#
        );
    }
}
