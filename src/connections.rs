//! Connection admission: `max_connections` and `max_connections_per_ip`, checked
//! before the upgrade so a full hub answers 503 instead of failing later.
//!
//! A [`ConnectionPermit`] is held by the session for its whole life and gives its
//! slot back when dropped, whatever path ended the session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Counts live sockets, in total and per client IP.
#[derive(Debug)]
pub struct ConnectionLimiter {
    /// Live sockets.
    total: AtomicUsize,
    /// `websocket.max_connections`.
    max_total: usize,
    /// `websocket.max_connections_per_ip`; 0 = unlimited.
    max_per_ip: usize,
    /// Live sockets per IP; only kept when `max_per_ip` is set, and entries go
    /// when they reach zero, so it holds at most one entry per live socket.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why admission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds `max_connections` sockets.
    Total(usize),
    /// This IP holds `max_connections_per_ip` sockets.
    PerIp(usize),
}

impl ConnectionLimiter {
    /// A limiter with the configured limits.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            total: AtomicUsize::new(0),
            max_total,
            max_per_ip,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Live sockets.
    pub fn current(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Takes a slot for a socket from `ip`, or says which limit is reached.
    pub fn try_acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnectionPermit, Refusal> {
        let admitted = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            });
        if admitted.is_err() {
            return Err(Refusal::Total(self.max_total));
        }
        let tracked_ip = match (self.max_per_ip, ip) {
            (0, _) | (_, None) => None,
            (max, Some(ip)) => {
                let mut per_ip = self.per_ip.lock();
                let n = per_ip.entry(ip).or_insert(0);
                if *n >= max {
                    drop(per_ip);
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refusal::PerIp(max));
                }
                *n += 1;
                Some(ip)
            }
        };
        Ok(ConnectionPermit {
            limiter: self.clone(),
            ip: tracked_ip,
        })
    }
}

/// One admitted socket's slot; released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    /// Where the slot came from.
    limiter: Arc<ConnectionLimiter>,
    /// The IP counted against the per-IP limit, if it was.
    ip: Option<IpAddr>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut per_ip = self.limiter.per_ip.lock();
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip_and_releases_on_drop() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let p1 = limiter.try_acquire(Some(a)).expect("first");
        let _p2 = limiter.try_acquire(Some(a)).expect("second");
        assert_eq!(limiter.try_acquire(Some(a)).unwrap_err(), Refusal::PerIp(2));
        let _p3 = limiter.try_acquire(Some(b)).expect("other ip");
        assert_eq!(limiter.try_acquire(Some(b)).unwrap_err(), Refusal::Total(3));
        drop(p1);
        assert_eq!(limiter.current(), 2);
        limiter.try_acquire(Some(a)).expect("slot released");
        assert!(limiter.per_ip.lock().len() <= 2);
    }
}
