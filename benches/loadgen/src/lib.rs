//! `hub-bench`: the load generator of realtime-hub.
//!
//! It speaks the hub's wire contract (`docs/PROTOCOL.md`) over loopback only,
//! bounded in count and time, and prints one JSON line per run.
//!
//! - [`scenario::conns`]: N idle sockets held across worker processes
//!   ([`worker`]); hub RSS per connection, `/socket-status` while held.
//! - [`scenario::fanout`]: S subscribers on one room, HTTP publishes at a rate
//!   or flat out; exact loss / duplicate / order accounting ([`accounting`]),
//!   latency and publish round trip histograms ([`latency`]).
//! - [`scenario::churn`]: connect / subscribe / close cycles.
//! - [`scenario::keyed`]: a keyed room's state replay to fresh subscribers,
//!   and the hub's memory per key (`fanout-max --keyed` is the fan-out with
//!   every publish keyed).
//! - [`scenario::cluster`]: the fan-out against one hub without Redis, one hub
//!   in cluster mode, and several hubs in cluster mode on a private Redis
//!   ([`redis`]).
//!
//! Subscribers connect over WebSocket ([`ws`]) or Server-Sent Events
//! ([`sse`], a reader of its own on raw TCP); [`transport`] hides which.
//!
//! [`hub`] starts a hub for a run, [`report`] turns results into JSON lines and
//! a markdown table.

pub mod accounting;
pub mod clock;
pub mod endpoint;
pub mod http;
pub mod hub;
pub mod jwt;
pub mod latency;
pub mod payload;
pub mod procfs;
pub mod redis;
pub mod report;
pub mod scenario;
pub mod sse;
pub mod transport;
pub mod worker;
pub mod ws;
