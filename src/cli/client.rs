//! One HTTP request to a running hub, for the subcommands, with every way it can
//! fail turned into a [`CliError`] whose message fits on one line and names the
//! URL.
//!
//! Why `ureq` and not actix's `awc`: a subcommand makes one request and exits,
//! so a blocking client is the simplest correct shape — no runtime to start, no
//! futures. With its default features off, ureq is plain HTTP/1.1 over std's
//! `TcpStream` and adds three small crates, where awc would bring in HTTP/2 (h2),
//! actix-tls and a second `rand`. The price is no TLS: URLs are `http://` only,
//! which is what a CLI on the hub's own host or container needs.

use std::time::Duration;

use serde_json::Value;

/// The largest answer body read (a `/socket-status` with the maximum number of
/// rooms is well under this).
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Everything that can go wrong talking to the hub. `Display` is the message
/// printed after `realtime-hub: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--url` is not something this client can connect to.
    #[error("bad hub URL {url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No connection: refused, unknown host, network down.
    #[error("cannot reach the hub at {url}: {why} (is it running? set --url or HUB_URL)")]
    Unreachable {
        /// The full URL requested.
        url: String,
        /// The cause, from the OS or the resolver.
        why: String,
    },
    /// No complete answer within the timeout.
    #[error("no answer from {url} within {secs} s (see --timeout)")]
    Timeout {
        /// The full URL requested.
        url: String,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// The hub answered with an error status and its JSON error body.
    #[error("{status} {code}: {message}")]
    Hub {
        /// HTTP status.
        status: u16,
        /// The contract's error code (`unknown_room`, `unauthorized`, ...).
        code: String,
        /// The hub's explanation.
        message: String,
    },
    /// An error status without the hub's JSON error body (a proxy, another
    /// server).
    #[error("{url} answered {status}{}", colon(body))]
    Status {
        /// The full URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body, if any.
        body: String,
    },
    /// A success status whose body is not what the hub sends.
    #[error("{url} did not answer like a realtime-hub: {why}")]
    Unexpected {
        /// The full URL requested.
        url: String,
        /// What was wrong with it.
        why: String,
    },
    /// Writing the result failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(String),
}

/// `: body`, or nothing for an empty body.
fn colon(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// An HTTP response of any status, its body read as text.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// A hub at one base URL.
pub struct HubClient {
    /// `http://host:port[/prefix]`, without a trailing slash; paths are appended.
    base: String,
    /// Seconds, for messages.
    timeout_s: u64,
    /// Configured once: the timeout, statuses returned rather than raised, no
    /// redirects followed (a 3xx is reported as it is), no proxy from the
    /// environment (the hub is usually on loopback).
    agent: ureq::Agent,
}

impl HubClient {
    /// A client for the hub at `url`, giving up on any request after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<HubClient, CliError> {
        let base = normalize_url(url)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("realtime-hub-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(HubClient {
            base,
            timeout_s: timeout.as_secs(),
            agent,
        })
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`, whatever the status.
    pub fn get(&self, path: &str) -> Result<Response, CliError> {
        let url = self.url(path);
        let result = self.agent.get(&url).call();
        self.answer(&url, result)
    }

    /// GET `path`; a non-2xx status is an error.
    pub fn get_ok(&self, path: &str) -> Result<String, CliError> {
        let answer = self.get(path)?;
        self.success(path, answer)
    }

    /// POST a JSON `body` to `path`, with `key` as a Bearer token and
    /// `idempotency` as `Idempotency-Key` when given; a non-2xx status is an error.
    pub fn post_ok(
        &self,
        path: &str,
        body: String,
        key: Option<&str>,
        idempotency: Option<&str>,
    ) -> Result<String, CliError> {
        let url = self.url(path);
        let mut request = self.agent.post(&url).content_type("application/json");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if let Some(idempotency) = idempotency {
            request = request.header("idempotency-key", idempotency);
        }
        let answer = self.answer(&url, request.send(body))?;
        self.success(path, answer)
    }

    /// Parses a success body as JSON.
    pub fn parse_json(&self, path: &str, body: &str) -> Result<Value, CliError> {
        serde_json::from_str(body).map_err(|e| self.unexpected(path, &format!("not JSON ({e})")))
    }

    /// Parses a success body as a JSON object.
    pub fn parse_object(&self, path: &str, body: &str) -> Result<Value, CliError> {
        let value = self.parse_json(path, body)?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(self.unexpected(path, "expected a JSON object"))
        }
    }

    /// A success answer whose body is not what the hub sends.
    pub fn unexpected(&self, path: &str, why: &str) -> CliError {
        CliError::Unexpected {
            url: self.url(path),
            why: why.to_string(),
        }
    }

    /// The error for an answer with an unwanted status: the hub's own
    /// `{"error","message"}` when the body is one.
    pub fn http_error(&self, path: &str, answer: &Response) -> CliError {
        #[derive(serde::Deserialize)]
        struct HubErrorBody {
            error: String,
            message: String,
        }
        match serde_json::from_str::<HubErrorBody>(&answer.body) {
            Ok(e) => CliError::Hub {
                status: answer.status,
                code: e.error,
                message: e.message,
            },
            Err(_) => CliError::Status {
                url: self.url(path),
                status: answer.status,
                body: one_line(&answer.body, 200),
            },
        }
    }

    fn success(&self, path: &str, answer: Response) -> Result<String, CliError> {
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(self.http_error(path, &answer))
        }
    }

    fn answer(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response, CliError> {
        let mut response = result.map_err(|e| self.transport_error(url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| self.transport_error(url, e))?;
        Ok(Response { status, body })
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> CliError {
        let url = url.to_string();
        match e {
            ureq::Error::Timeout(_) => CliError::Timeout {
                url,
                secs: self.timeout_s,
            },
            ureq::Error::BadUri(why) => CliError::BadUrl { url, why },
            ureq::Error::Io(io) => CliError::Unreachable {
                url,
                why: io_reason(&io),
            },
            ureq::Error::HostNotFound => CliError::Unreachable {
                url,
                why: "host not found".into(),
            },
            ureq::Error::ConnectionFailed => CliError::Unreachable {
                url,
                why: "connection failed".into(),
            },
            ureq::Error::Protocol(p) => CliError::Unexpected {
                url,
                why: format!("not an HTTP answer ({p})"),
            },
            ureq::Error::BodyExceedsLimit(_) => CliError::Unexpected {
                url,
                why: format!("answer larger than {MAX_BODY_BYTES} bytes"),
            },
            other => CliError::Unreachable {
                url,
                why: other.to_string(),
            },
        }
    }
}

/// `http://host:port[/prefix]` without a trailing slash, from what the user
/// typed; a bare `host:port` gets `http://`.
pub fn normalize_url(url: &str) -> Result<String, CliError> {
    let trimmed = url.trim();
    let bad = |why: &str| CliError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let with_scheme = match trimmed.split_once("://") {
        None => format!("http://{trimmed}"),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => trimmed.to_string(),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad(
                "https is not supported by this client (http:// only); use the hub's plain \
                 listener, e.g. from inside its container or host",
            ))
        }
        Some((scheme, _)) => {
            return Err(bad(&format!("unsupported scheme {scheme:?}; use http://")))
        }
    };
    let rest = &with_scheme["http://".len()..];
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("no host"));
    }
    if rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
        return Err(bad(
            "expected http://HOST[:PORT][/PREFIX], without query or spaces",
        ));
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

/// `segment` percent-encoded for use as one path segment.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The OS's reason, without the "(os error 111)" noise when there is a kind.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::ConnectionAborted => "connection aborted".into(),
        ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// The first `max` characters of `text`, on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.trim().chars().count() > max {
        format!("{flat}...")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_or_refused() {
        let ok = |u: &str| normalize_url(u).expect(u);
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("http://hub:8080/"), "http://hub:8080");
        assert_eq!(ok("HTTP://hub/prefix/"), "HTTP://hub/prefix");
        assert_eq!(ok("127.0.0.1:9000"), "http://127.0.0.1:9000");
        for bad in [
            "https://hub",
            "ftp://hub",
            "http://",
            "http:///x",
            "http://a b",
            "http://h?x",
        ] {
            assert!(
                matches!(normalize_url(bad), Err(CliError::BadUrl { .. })),
                "{bad}"
            );
        }
        let msg = normalize_url("https://hub").expect_err("https").to_string();
        assert!(msg.contains("http:// only"), "{msg}");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("alerts"), "alerts");
        assert_eq!(encode_segment("a.b:c-d_e"), "a.b:c-d_e");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn hub_error_bodies_become_one_line() {
        let c = HubClient::new("http://127.0.0.1:1", Duration::from_secs(1)).expect("client");
        let e = c.http_error(
            "/api/rooms/x/events",
            &Response {
                status: 404,
                body: r#"{"error":"unknown_room","message":"no room x"}"#.into(),
            },
        );
        assert_eq!(e.to_string(), "404 unknown_room: no room x");
        let e = c.http_error(
            "/healthz",
            &Response {
                status: 502,
                body: "<html>\nBad Gateway\n</html>".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "http://127.0.0.1:1/healthz answered 502: <html> Bad Gateway </html>"
        );
    }
}
