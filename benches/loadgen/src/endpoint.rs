//! The hub under test: where it listens (loopback only) and, optionally, its pid.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context, Result};
use reqwest::Url;

/// Where the hub under test is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    pid: Option<u32>,
}

impl Endpoint {
    /// Parses `http://127.0.0.x:PORT` (or `http://localhost:PORT`).
    ///
    /// Anything that is not an IPv4 loopback address is refused: the harness
    /// sends traffic to this machine only.
    pub fn new(url: &str, pid: Option<u32>) -> Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("bad hub URL `{url}`"))?;
        if parsed.scheme() != "http" {
            bail!("hub URL `{url}` must be http:// (the harness speaks plain ws:// and http://)");
        }
        let ip = match parsed.host_str() {
            Some("localhost") => Ipv4Addr::LOCALHOST,
            Some(host) => match host.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => ip,
                _ => bail!("hub host `{host}` is not an IPv4 loopback address"),
            },
            None => bail!("hub URL `{url}` has no host"),
        };
        if !ip.is_loopback() {
            bail!("hub address {ip} is not loopback (127.0.0.0/8): refusing to send load there");
        }
        let port = parsed
            .port_or_known_default()
            .context("hub URL has no port")?;
        Ok(Self {
            addr: SocketAddr::from((ip, port)),
            pid,
        })
    }

    /// The hub's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub's pid, when known (needed for RSS and CPU readings).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// `http://ADDR` with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

/// The source address of the `index`-th client address: 127.0.0.2, 127.0.0.3, …
///
/// Client sockets are bound to these so that no single source address runs out
/// of ephemeral ports (~28k each).
pub fn source_ip(index: usize) -> Result<Ipv4Addr> {
    let last = u8::try_from(index + 2).ok().filter(|&b| b < 255);
    match last {
        Some(b) => Ok(Ipv4Addr::new(127, 0, 0, b)),
        None => bail!("source address index {index} is past 127.0.0.254"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        assert!(Endpoint::new("http://127.0.0.1:9100", None).is_ok());
        assert!(Endpoint::new("http://127.0.0.9:9100/", None).is_ok());
        assert!(Endpoint::new("http://localhost:9100", None).is_ok());
        assert!(Endpoint::new("http://10.0.0.1:9100", None).is_err());
        assert!(Endpoint::new("http://example.com:80", None).is_err());
        assert!(Endpoint::new("https://127.0.0.1:9100", None).is_err());
    }

    #[test]
    fn source_addresses_stay_in_loopback() {
        assert_eq!(source_ip(0).ok(), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_ip(252).ok(), Some(Ipv4Addr::new(127, 0, 0, 254)));
        assert!(source_ip(253).is_err());
    }
}
