//! Shared helpers for the black-box tests: start a hub on 127.0.0.1:0 in-process,
//! talk to it with a real WebSocket client (tokio-tungstenite) and a real HTTP
//! client (reqwest). Every wait is bounded.

#![allow(dead_code)]

use std::time::Duration;

pub mod http;
pub mod hub;
pub mod presence;
pub mod redis;
pub mod sse;
pub mod ws;

pub use http::*;
pub use hub::*;
pub use ws::*;

/// The longest any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(5);
