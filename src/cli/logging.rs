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
//!
//! Libraries that log once per client connection — actix-http writes an ERROR
//! `stream error: request parse error` for every malformed request, rustls a
//! warning for every failed handshake — are rate-limited ([`RateLimit`]), so a
//! client cannot flood the log: one line per target per [`LIMIT_WINDOW`], the
//! next one saying how many were suppressed.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

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
    let logger = builder.build();
    log::set_max_level(logger.filter());
    // Fails only if a logger is installed already; that one then stays.
    let _ = log::set_boxed_logger(Box::new(Limited {
        inner: logger,
        limit: parking_lot::Mutex::new(RateLimit::default()),
    }));
    if format.is_none() {
        log::warn!("{FORMAT_VAR}={requested:?} is not a known log format (text, json); using text");
    }
}

/// Log targets whose lines are per client connection, by prefix.
const LIMITED_TARGETS: [&str; 2] = ["actix_http::", "rustls::"];

/// At most one line per limited target in this long.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// Per-target windows: the first line of a window passes, the rest are counted.
#[derive(Debug, Default)]
pub struct RateLimit {
    windows: HashMap<String, (Instant, u64)>,
}

impl RateLimit {
    /// Whether a line of `target` at `now` is written: `Some(n)` yes, with `n`
    /// lines suppressed since the last one written; `None` no.
    pub fn admit(&mut self, target: &str, now: Instant) -> Option<u64> {
        if !LIMITED_TARGETS.iter().any(|p| target.starts_with(p)) {
            return Some(0);
        }
        match self.windows.get_mut(target) {
            Some((opened, suppressed)) if now.duration_since(*opened) < LIMIT_WINDOW => {
                *suppressed += 1;
                None
            }
            Some((opened, suppressed)) => {
                *opened = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.windows.insert(target.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// env_logger behind a [`RateLimit`].
struct Limited {
    inner: env_logger::Logger,
    limit: parking_lot::Mutex<RateLimit>,
}

impl log::Log for Limited {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.inner.matches(record) {
            return;
        }
        match self.limit.lock().admit(record.target(), Instant::now()) {
            None => {}
            Some(0) => self.inner.log(record),
            Some(suppressed) => self.inner.log(
                &log::Record::builder()
                    .args(format_args!(
                        "{} ({suppressed} similar lines suppressed in the last {} s)",
                        record.args(),
                        LIMIT_WINDOW.as_secs()
                    ))
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_level_targets_get_one_line_per_window() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        let target = "actix_http::h1::dispatcher";
        assert_eq!(limit.admit(target, t0), Some(0));
        for i in 1..=99 {
            assert_eq!(limit.admit(target, t0 + Duration::from_millis(i)), None);
        }
        // Another limited target has its own window.
        assert_eq!(limit.admit("rustls::common_state", t0), Some(0));
        // Our own lines are never limited.
        for _ in 0..5 {
            assert_eq!(limit.admit("realtime_hub::session", t0), Some(0));
        }
        let later = t0 + LIMIT_WINDOW;
        assert_eq!(limit.admit(target, later), Some(99));
        assert_eq!(limit.admit(target, later), None);
        assert_eq!(limit.admit(target, later + LIMIT_WINDOW), Some(1));
    }

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
