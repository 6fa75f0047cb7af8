//! Host names and `host:port` strings, parsed alike by config validation, the
//! HTTP layer (`Host` and `Origin` checks) and the Sentinel client.

/// The host part of a `Host` value or authority: the port and a trailing dot
/// removed, brackets of an IPv6 literal kept.
pub fn host_name(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority, |end| &authority[..=end])
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// `host:port` (or `[v6]:port`) → the host without brackets and the port;
/// `None` for no port, port 0, or an empty or blank host.
pub fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0 && !host.contains(char::is_whitespace))
        .then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:9000"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("hub.example.com."), "hub.example.com");
        assert_eq!(host_name("hub.example.com:x"), "hub.example.com:x");
    }

    #[test]
    fn host_port_splits_and_refuses() {
        assert_eq!(host_port("s1:26379"), Some(("s1".into(), 26379)));
        assert_eq!(host_port("[::1]:26379"), Some(("::1".into(), 26379)));
        for bad in ["s1", "s1:", ":26379", "s1:0", "s1:x", "a b:1"] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
