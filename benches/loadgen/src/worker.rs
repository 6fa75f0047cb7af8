//! The `conns` worker: a child process holding a share of the idle connections.
//!
//! One process may hold 20,000 file descriptors on this machine, so `conns`
//! re-executes this binary with the hidden `conns-worker` subcommand, once per
//! ~9,000 sockets. A worker talks to its coordinator over stdin/stdout, one
//! line at a time:
//!
//! 1. worker → `{"event":"ready"}`
//! 2. coordinator → `go`; the worker connects its sockets (each bound to one of
//!    its source addresses, each waiting for `welcome`), then
//!    worker → `{"event":"connected",...}`
//! 3. coordinator → `release` (or closes stdin); the worker drops every socket,
//!    then worker → `{"event":"released",...}` and exits.
//!
//! A worker that hears nothing for `max_life_s` releases and exits by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::endpoint::{source_ip, Endpoint};
use crate::procfs::{cpu_ticks, TICKS_PER_S};
use crate::transport::{Conn, Incoming, Transport};
use crate::ws::IDLE_READ_BUFFER;

/// How long one socket has to connect and receive `welcome`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a worker is asked to do.
#[derive(Debug, Clone)]
pub struct WorkerParams {
    /// The hub's URL (loopback).
    pub url: String,
    /// Sockets to hold.
    pub count: usize,
    /// Index of the first source address (0 = 127.0.0.2).
    pub first_source: usize,
    /// Source addresses to spread the sockets over.
    pub sources: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// The worker exits by itself after this many seconds.
    pub max_life_s: u64,
    /// How the clients connect.
    pub transport: Transport,
    /// The room subscribed clients subscribe to.
    pub room: String,
    /// WebSocket clients subscribe to `room` (SSE streams always do).
    pub subscribe: bool,
}

/// What one idle client connects to and waits for.
#[derive(Debug, Clone)]
struct Target {
    endpoint: Endpoint,
    transport: Transport,
    /// `Some(room)`: subscribe and wait for `subscribed`; `None`: `/ws`, `welcome`.
    room: Option<String>,
}

/// A line a worker writes to its coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The worker is up and waits for `go`.
    Ready,
    /// Every socket has connected or failed.
    Connected {
        /// Sockets that received `welcome`.
        connected: u64,
        /// Sockets that did not.
        failed: u64,
        /// Seconds from `go` to the last handshake.
        elapsed_s: f64,
        /// The first failure, if any.
        first_error: Option<String>,
        /// CPU seconds the worker used from `go` to here.
        cpu_s: f64,
    },
    /// The sockets were dropped.
    Released {
        /// Sockets that ended on the hub's side while held.
        dropped_while_held: u64,
    },
}

/// Runs a worker until released; see the module docs for the protocol.
pub async fn run(params: WorkerParams) -> Result<()> {
    let endpoint = Endpoint::new(&params.url, None)?;
    let subscribed = params.subscribe || params.transport == Transport::Sse;
    let target = Target {
        endpoint,
        transport: params.transport,
        room: subscribed.then(|| params.room.clone()),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(params.max_life_s);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    emit(&WorkerMessage::Ready)?;
    match tokio::time::timeout_at(deadline, lines.next_line()).await {
        Ok(Ok(Some(line))) if line.trim() == "go" => {}
        _ => return Ok(()),
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<Result<(), String>>(1024);
    let gate = Arc::new(Semaphore::new(params.concurrency.max(1)));
    let dropped = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_before = cpu_ticks(std::process::id()).ok();
    let mut sockets = JoinSet::new();
    for i in 0..params.count {
        let source = source_ip(params.first_source + i % params.sources.max(1))?;
        sockets.spawn(hold_one(
            target.clone(),
            source,
            gate.clone(),
            done_tx.clone(),
            stop_rx.clone(),
            dropped.clone(),
        ));
    }
    drop(done_tx);

    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    while connected + failed < params.count as u64 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            _ => break,
        }
    }
    emit(&WorkerMessage::Connected {
        connected,
        failed,
        elapsed_s: started.elapsed().as_secs_f64(),
        first_error,
        cpu_s: match (cpu_before, cpu_ticks(std::process::id()).ok()) {
            (Some(before), Some(after)) => after.saturating_sub(before) as f64 / TICKS_PER_S,
            _ => 0.0,
        },
    })?;

    // Any line, end of input or the deadline releases the sockets.
    let _ = tokio::time::timeout_at(deadline, lines.next_line()).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while sockets.join_next().await.is_some() {}
    })
    .await;
    sockets.abort_all();
    emit(&WorkerMessage::Released {
        dropped_while_held: dropped.load(Ordering::Relaxed),
    })
}

/// Connects one client, reports the handshake, then holds it until stopped.
async fn hold_one(
    target: Target,
    source: std::net::Ipv4Addr,
    gate: Arc<Semaphore>,
    done: mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
) {
    let handshake = async {
        let _permit = gate.acquire().await?;
        let Target {
            endpoint,
            transport,
            room,
        } = &target;
        let conn = match room {
            Some(room) => {
                Conn::subscribe(
                    *transport,
                    endpoint,
                    room,
                    Some(source),
                    IDLE_READ_BUFFER,
                    HANDSHAKE_TIMEOUT,
                )
                .await?
                .0
            }
            None => {
                Conn::websocket_welcomed(
                    endpoint,
                    Some(source),
                    IDLE_READ_BUFFER,
                    HANDSHAKE_TIMEOUT,
                )
                .await?
            }
        };
        anyhow::Ok(conn)
    };
    let mut conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let _ = done.send(Err(format!("{e:#}"))).await;
            return;
        }
        Err(_) => {
            let _ = done.send(Err("handshake timed out".to_owned())).await;
            return;
        }
    };
    let _ = done.send(Ok(())).await;
    // Keep reading so the hub's pings are answered (and SSE keep-alives read).
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            incoming = conn.next() => if let Incoming::Ended(_) = incoming {
                dropped.fetch_add(1, Ordering::Relaxed);
                return;
            },
        }
    }
}

fn emit(message: &WorkerMessage) -> Result<()> {
    let line = serde_json::to_string(message).context("serialising a worker message")?;
    println!("{line}");
    Ok(())
}
