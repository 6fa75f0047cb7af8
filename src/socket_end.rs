//! Ending a WebSocket's TCP connection as soon as its closing handshake is
//! done, instead of a second later.
//!
//! actix serves a WebSocket as an HTTP response whose body is the socket's
//! outgoing frames and whose request payload is the incoming ones. When the
//! body ends (the close frame is out), the payload is still open, so actix
//! "lingers": it reads and discards until the client closes its side, or
//! until `client_disconnect_timeout` (1 s) passes. A client that follows
//! RFC 6455 section 7.1.1 waits for the *server* to close the TCP connection
//! first, so every clean close took that second (measured with Python
//! `websockets`: 998 ms). Lowering the timeout is no fix: actix arms it from
//! a clock it refreshes every 500 ms, so short timeouts can fire before they
//! are armed and never wake the connection.
//!
//! So when the client closed first, once the answering close frame is handed
//! to actix, the session shuts the read side of its TCP socket: actix then
//! reads end-of-file, flushes what it holds (the close frame) and closes at
//! once. The write side is untouched, so nothing queued is lost. The client
//! sends nothing after its close frame, so nothing it sends is cut off. When
//! the hub closes first (drain, 4001, 4008), the client still has its answer
//! to send: actix's linger reads it, and ends when the client closes. Over TLS this is not done (an end-of-file
//! under rustls is an error, not a clean close); those keep actix's linger.

use std::any::Any;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use actix_web::rt::net::TcpStream;

/// A plain TCP connection's socket, noted when it is accepted.
#[derive(Debug, Clone, Copy)]
pub struct PeerSocket {
    fd: RawFd,
    peer: SocketAddr,
}

impl PeerSocket {
    /// The socket of an accepted connection, if it is plain TCP.
    pub fn of(conn: &dyn Any) -> Option<PeerSocket> {
        let tcp = conn.downcast_ref::<TcpStream>()?;
        Some(PeerSocket {
            fd: tcp.as_raw_fd(),
            peer: tcp.peer_addr().ok()?,
        })
    }

    /// Shuts the socket's read side (see the module docs). Call it only while
    /// the connection's response body is still held, on the connection's own
    /// worker thread: actix cannot have closed the socket then.
    pub fn stop_reading(&self) {
        self.shut(rustix::net::Shutdown::Read);
    }

    /// Shuts both sides: the peer gets end-of-file after what it has, and
    /// actix's next read or write on the connection fails, so it drops the
    /// connection even while the peer reads nothing (an SSE stream whose
    /// session ended as a slow consumer). Same rule as [`Self::stop_reading`].
    pub fn stop(&self) {
        self.shut(rustix::net::Shutdown::Both);
    }

    /// Whether the peer closed its side or reset the connection (a peek
    /// that reads end-of-file or an error). Same rule as [`Self::stop_reading`].
    pub fn peer_closed(&self) -> bool {
        self.with_fd(|fd| {
            let mut byte = [0u8; 1];
            let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
            match rustix::net::recv(fd, &mut byte[..], flags) {
                Ok((_, n)) => n == 0,
                Err(e) => e != rustix::io::Errno::AGAIN && e != rustix::io::Errno::INTR,
            }
        })
        .unwrap_or(false)
    }

    fn shut(&self, how: rustix::net::Shutdown) {
        let _ = self.with_fd(|fd| rustix::net::shutdown(fd, how));
    }

    /// Runs `f` on the socket, if its fd is still this connection's.
    fn with_fd<T>(&self, f: impl FnOnce(BorrowedFd<'_>) -> T) -> Option<T> {
        // SAFETY: the caller holds the connection's response body (the
        // WebSocket's writing half, or the SSE stream's body is known to be
        // alive) and runs on the worker thread that owns the connection, so
        // actix's dispatcher, which owns this fd, is alive and cannot close it
        // during this call. The peer check below also refuses an fd number
        // that was reused for another connection.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let same = rustix::net::getpeername(fd)
            .ok()
            .flatten()
            .and_then(|a| SocketAddr::try_from(a).ok())
            .is_some_and(|peer| peer == self.peer);
        same.then(|| f(fd))
    }
}
