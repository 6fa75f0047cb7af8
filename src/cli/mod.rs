//! The operator's side of the `realtime-hub` binary: the subcommands that talk
//! to a running hub over its HTTP API (`status`, `rooms`, `publish`,
//! `healthcheck`), and the log format of the serving process.
//!
//! - this file: the subcommands' arguments (clap derive) and what each one does;
//! - [`client`]: one HTTP request to the hub, with every failure turned into a
//!   one-line message;
//! - [`render`]: the tables and summaries printed for people;
//! - [`logging`]: `env_logger` set up for the human or the JSON line format
//!   (`HUB_LOG_FORMAT`).
//!
//! Exit codes: 0 success, 1 the hub could not be reached or answered with an
//! error (or, for `healthcheck`, is not healthy), 2 a usage error — a bad flag,
//! a missing argument, or a `publish` whose JSON argument does not parse. Clap
//! reports usage errors itself, with exit code 2, before anything is sent.

pub mod client;
pub mod logging;
pub mod render;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::value::RawValue;

use client::{CliError, HubClient};

/// The URL the subcommands talk to when neither `--url` nor `HUB_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Exit code for a hub that is unreachable, answers an error, or is unhealthy.
const EXIT_FAILED: u8 = 1;

/// The subcommands. With none, the binary serves (see `src/main.rs`).
#[derive(clap::Subcommand, Debug)]
pub enum Subcommand {
    /// Show who is connected: sockets by type, rooms, and cluster nodes when
    /// there are any (GET /socket-status).
    Status {
        /// Which hub to ask.
        #[command(flatten)]
        target: Target,
        /// Print the hub's JSON answer as it is, for scripts (`| jq`).
        #[arg(long)]
        json: bool,
    },
    /// List the rooms with their subscribers, seq, history and epoch
    /// (GET /api/rooms).
    Rooms {
        /// Which hub to ask.
        #[command(flatten)]
        target: Target,
        /// Print the hub's JSON answer as it is, for scripts (`| jq`).
        #[arg(long)]
        json: bool,
    },
    /// Publish one event into a room (POST /api/rooms/{ROOM}/events) and print
    /// its seq.
    #[command(after_help = "Examples:\n  \
        realtime-hub publish alerts alert_raised '{\"level\":\"high\",\"zone\":4}'\n  \
        HUB_API_KEY=... realtime-hub publish alerts note '\"a JSON string\"' --url http://hub:8080\n  \
        realtime-hub publish recommendations recommendation_updated '{\"status\":\"approved\"}' --key rec-42\n  \
        realtime-hub publish recommendations recommendation_removed --key rec-42 --delete\n\n\
        A JSON argument that does not parse is a usage error (exit 2); nothing is sent.")]
    Publish(PublishArgs),
    /// Exit 0 if the hub answers GET /healthz with 200, else 1 with the reason.
    /// Prints nothing when healthy: meant for Docker's HEALTHCHECK.
    Healthcheck {
        /// Which hub to ask.
        #[command(flatten)]
        target: Target,
    },
}

/// Where the hub is and how long to wait for it: shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The hub's base URL. http:// only: this client has no TLS, so point it at
    /// the hub's plain listener (e.g. from inside the container or host). A
    /// bare HOST:PORT means http://HOST:PORT.
    #[arg(long, value_name = "URL", env = "HUB_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Give up after this many seconds (connecting and answering together).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
}

impl Target {
    fn client(&self) -> Result<HubClient, CliError> {
        HubClient::new(&self.url, Duration::from_secs(self.timeout))
    }
}

/// `publish ROOM TYPE [JSON] [--key K [--delete]] [--api-key K] [--json]`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The room to publish into, e.g. `alerts`.
    pub room: String,

    /// The event's type, e.g. `alert_raised` (1-128 bytes; not one of the
    /// reserved frame types such as `welcome`).
    #[arg(value_name = "TYPE")]
    pub kind: String,

    /// The event's data: any JSON value, checked here and sent byte for byte.
    /// Quote it for your shell; a JSON string needs its own quotes ('"hi"').
    /// May be left out with `--delete`.
    #[arg(value_name = "JSON", value_parser = parse_json, allow_hyphen_values = true,
          required_unless_present = "delete")]
    pub data: Option<Box<RawValue>>,

    /// A keyed room's state key (1-256 bytes): the event becomes this key's
    /// latest in the room's state.
    #[arg(long, value_name = "K")]
    pub key: Option<String>,

    /// Remove `--key` from the room's state.
    #[arg(long, requires = "key")]
    pub delete: bool,

    /// API key for the hub's write API, sent as `Authorization: Bearer`. Not
    /// needed from loopback when the hub has no `auth.api_keys`. Prefer the
    /// environment variable: a flag's value shows in `ps`.
    #[arg(long, value_name = "K", env = "HUB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Print the hub's acknowledgement `{"room","epoch","seq","delivered"}` as
    /// it is, instead of a one-line summary.
    #[arg(long)]
    pub json: bool,

    /// Sent as `Idempotency-Key`: running the same command again (e.g. after a
    /// timeout) answers the first publish's seq instead of publishing twice.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Which hub to ask.
    #[command(flatten)]
    pub target: Target,
}

/// Clap value parser for `publish`'s data: valid JSON, kept as written.
fn parse_json(s: &str) -> Result<Box<RawValue>, String> {
    serde_json::from_str::<Box<RawValue>>(s).map_err(|e| format!("not valid JSON: {e}"))
}

/// The body of `POST /api/rooms/{room}/events`.
#[derive(Serialize)]
struct PublishBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    delete: bool,
}

/// Runs one subcommand and returns the process's exit code.
pub fn run(command: Subcommand) -> ExitCode {
    let outcome = match command {
        Subcommand::Status { target, json } => status(&target, json),
        Subcommand::Rooms { target, json } => rooms(&target, json),
        Subcommand::Publish(args) => publish(&args),
        Subcommand::Healthcheck { target } => healthcheck(&target),
    };
    match outcome.and_then(|out| print(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("realtime-hub: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Writes `out` to stdout; a closed pipe (`| head`) is an error, not a panic.
fn print(out: &str) -> Result<(), CliError> {
    if out.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::Output(e.to_string()))
}

fn status(target: &Target, json: bool) -> Result<String, CliError> {
    let client = target.client()?;
    let body = client.get_ok("/socket-status")?;
    if json {
        return Ok(body.trim_end().to_string());
    }
    let value = client.parse_object("/socket-status", &body)?;
    Ok(render::status(&value))
}

fn rooms(target: &Target, json: bool) -> Result<String, CliError> {
    let client = target.client()?;
    let body = client.get_ok("/api/rooms")?;
    if json {
        return Ok(body.trim_end().to_string());
    }
    let value = client.parse_json("/api/rooms", &body)?;
    match value.as_array() {
        Some(rooms) => Ok(render::rooms(rooms)),
        None => Err(client.unexpected("/api/rooms", "expected a JSON array")),
    }
}

fn publish(args: &PublishArgs) -> Result<String, CliError> {
    let client = args.target.client()?;
    let path = format!("/api/rooms/{}/events", client::encode_segment(&args.room));
    let body = serde_json::to_string(&PublishBody {
        kind: &args.kind,
        data: args.data.as_deref(),
        key: args.key.as_deref(),
        delete: args.delete,
    })
    .map_err(|e| CliError::Output(e.to_string()))?;
    let key = args.api_key.as_deref().filter(|k| !k.is_empty());
    let ack = client.post_ok(&path, body, key, args.idempotency_key.as_deref())?;
    if args.json {
        return Ok(ack.trim_end().to_string());
    }
    let value = client.parse_object(&path, &ack)?;
    Ok(render::published(&value))
}

fn healthcheck(target: &Target) -> Result<String, CliError> {
    let client = target.client()?;
    let answer = client.get("/healthz")?;
    if answer.status == 200 {
        Ok(String::new())
    } else {
        Err(client.http_error("/healthz", &answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_data_must_be_json_and_is_kept_as_written() {
        let raw = parse_json(r#"{"b":1, "a":[true,null]}"#).expect("valid");
        assert_eq!(raw.get(), r#"{"b":1, "a":[true,null]}"#);
        assert!(parse_json("-1").is_ok());
        assert!(parse_json(r#""text""#).is_ok());
        let err = parse_json("{level: high}").expect_err("invalid");
        assert!(err.starts_with("not valid JSON"), "{err}");
        assert!(parse_json("hello").is_err());
        assert!(parse_json("").is_err());
    }

    #[test]
    fn the_publish_body_embeds_data_untouched() {
        let data = parse_json(r#"{"z":1,"a":2}"#).expect("valid");
        let body = serde_json::to_string(&PublishBody {
            kind: "alert_raised",
            data: Some(&data),
            key: None,
            delete: false,
        })
        .expect("serializes");
        assert_eq!(body, r#"{"type":"alert_raised","data":{"z":1,"a":2}}"#);
        let body = serde_json::to_string(&PublishBody {
            kind: "rec_removed",
            data: None,
            key: Some("rec 1"),
            delete: true,
        })
        .expect("serializes");
        assert_eq!(
            body,
            r#"{"type":"rec_removed","key":"rec 1","delete":true}"#
        );
    }
}
