//! Starting, running and draining a hub: wires the registry, the HTTP server and
//! the signal handler together.
//!
//! [`Hub::bind`] is the one constructor; the binary runs it until SIGTERM/SIGINT
//! ([`run_until_signal`]), tests and embedders run it on a thread of its own
//! ([`spawn`]) and get the bound address back.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};
use tokio::sync::watch;

use crate::cluster::{BrokerTasks, RedisBroker, RedisEngine};
use crate::config::Config;
use crate::connections::ConnectionLimiter;
use crate::engine::durable::{DurableEngine, DurableTasks};
use crate::engine::{memory::MemoryEngine, Engine, Readiness};
use crate::http::{self, AppState};
use crate::prepared::Prepared;
use crate::reader::ReadLimits;
use crate::registry::{Drain, RegistryActor, RegistryHandle};
use crate::session::SessionSettings;

/// How long actix may take to finish in-flight HTTP requests once the sockets
/// are gone; part of `shutdown_grace_s`, not added to it.
const HTTP_SHUTDOWN: Duration = Duration::from_secs(1);

/// A bound, not yet running hub.
pub struct Hub {
    /// The HTTP server future.
    server: Server,
    /// Where it listens.
    addrs: Vec<SocketAddr>,
    /// Control over the running hub.
    handle: HubHandle,
    /// The registry's thread, stopped when the server ends.
    registry_arbiter: actix::Arbiter,
    /// The cluster broker's thread (cluster mode), stopped with it.
    cluster_arbiter: Option<actix::Arbiter>,
    /// In a cluster: the broker, so a stopping node can remove its record.
    cluster: Option<RedisBroker>,
    /// The durable engine's thread: it commits what is queued and closes the
    /// store once the registry is gone.
    durable: Option<std::thread::JoinHandle<()>>,
}

/// The engine chosen by the config, and what the server keeps of it: the one
/// place that knows which engines exist.
struct Engines {
    engine: Box<dyn Engine>,
    readiness: Readiness,
    cluster: Option<(RedisBroker, BrokerTasks)>,
    durable: Option<DurableTasks>,
}

impl Engines {
    fn new(config: &Config, node: &str) -> io::Result<Engines> {
        if config.cluster.is_on() {
            let (broker, tasks) =
                RedisBroker::new(&config.cluster, config.rooms.idempotency_ttl_s, node)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let ready = broker.clone();
            return Ok(Engines {
                engine: Box::new(RedisEngine::new(broker.clone())),
                readiness: Arc::new(move || ready.ready()),
                cluster: Some((broker, tasks)),
                durable: None,
            });
        }
        if !config.storage.path.is_empty() {
            // An unusable store is a configuration the hub cannot run with:
            // exit 2 naming the path (contract section 10).
            let (engine, tasks, readiness) = DurableEngine::open(config)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            return Ok(Engines {
                engine: Box::new(engine),
                readiness,
                cluster: None,
                durable: Some(tasks),
            });
        }
        Ok(Engines {
            engine: Box::new(MemoryEngine::new(config)),
            readiness: Arc::new(|| Ok(())),
            cluster: None,
            durable: None,
        })
    }
}

/// Control over a running hub: drain or stop it. Cheap to clone, usable from
/// any thread or runtime.
#[derive(Clone)]
pub struct HubHandle {
    /// Stops the HTTP server.
    server: ServerHandle,
    /// The shared state (draining flag, registry address).
    state: AppState,
    /// Live session count, to know when a drain is complete.
    sessions: watch::Receiver<usize>,
}

impl Hub {
    /// Starts the registry and binds the HTTP server; must run inside an actix
    /// `System`.
    pub fn bind(prepared: Prepared) -> io::Result<Hub> {
        let Prepared {
            config,
            node,
            auth,
            tls,
        } = prepared;
        // Before anything takes a metric handle (rooms take theirs at creation).
        crate::metrics::install();
        let draining = Arc::new(AtomicBool::new(false));
        let Engines {
            engine,
            readiness,
            cluster,
            durable,
        } = Engines::new(&config, &node)?;
        let (cluster_broker, cluster_tasks) = cluster.unzip();
        let (registry, sessions) =
            RegistryActor::new(config.clone(), node.clone(), draining.clone(), engine);
        let registry_arbiter = actix::Arbiter::new();
        let registry = RegistryHandle::new(
            RegistryActor::start_in_arbiter(&registry_arbiter.handle(), |_| registry),
            config.server.registry_mailbox,
            Duration::from_millis(config.server.registry_max_lag_ms),
        );
        let cluster_arbiter = cluster_tasks.map(|t| t.start(registry.clone()));
        let durable = durable.map(|t| t.start(registry.clone()));
        let ws = &config.websocket;
        let fds = crate::fd_limit::plan(ws.max_connections, config.worker_count());
        let state = AppState {
            auth: auth.clone(),
            connections: ConnectionLimiter::new(fds.max_sessions, ws.max_connections_per_ip),
            session_settings: Arc::new(SessionSettings {
                auth,
                heartbeat: Duration::from_secs(ws.heartbeat_interval_s),
                client_timeout: Duration::from_secs(ws.client_timeout_s),
                read_limits: ReadLimits {
                    max_message_bytes: ws.max_frame_bytes,
                    max_fragments: ws.max_fragments,
                },
                outbound_queue: ws.outbound_queue,
                outbound_queue_bytes: ws.outbound_queue_bytes,
                rate_per_s: ws.rate_per_s,
                rate_burst: ws.rate_burst,
                write_timeout: Duration::from_secs(ws.write_timeout_s),
                node: Arc::from(node.as_str()),
            }),
            registry,
            draining,
            started: Instant::now(),
            config: config.clone(),
            readiness,
        };
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(http::close_unread_bodies))
                .wrap(actix_web::middleware::from_fn(http::access_log))
                .configure(http::configure(app_state.clone()))
        })
        .workers(config.worker_count())
        .shutdown_timeout(HTTP_SHUTDOWN.as_secs())
        .disable_signals()
        .backlog(4096);
        let send_buffer = ws.socket_send_buffer;
        let server = server.on_connect(move |conn, extensions| {
            if send_buffer > 0 {
                cap_send_buffer(conn, send_buffer);
            }
            // For closing a WebSocket's TCP connection right after its close
            // handshake (src/socket_end.rs).
            if let Some(socket) = crate::socket_end::PeerSocket::of(conn) {
                extensions.insert(socket);
            }
        });
        let server = match fds.max_accepted_per_worker {
            Some(n) => server.max_connections(n),
            None => server,
        };
        let secure = tls.is_some();
        let server = match tls {
            None => server.bind(&config.server.bind)?,
            Some(tls) => server.bind_rustls_0_23(&config.server.bind, tls)?,
        };
        let addrs = server.addrs();
        let server = server.run();
        let handle = HubHandle {
            server: server.handle(),
            state,
            sessions,
        };
        log::info!(
            "realtime-hub listening on {} ({}, node {node}, {} workers)",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if secure { "wss/https" } else { "ws/http" },
            config.worker_count()
        );
        if config.auth.api_keys.is_empty() {
            log::warn!(
                "auth.api_keys is empty: the HTTP write/admin API answers loopback clients only"
            );
        }
        Ok(Hub {
            server,
            addrs,
            handle,
            registry_arbiter,
            cluster_arbiter,
            cluster: cluster_broker,
            durable,
        })
    }

    /// The addresses the server listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Control over the hub once it runs.
    pub fn handle(&self) -> HubHandle {
        self.handle.clone()
    }

    /// Serves until stopped.
    pub async fn run(self) -> io::Result<()> {
        let result = self.server.await;
        if let Some(redis) = &self.cluster {
            redis.leave(Duration::from_secs(1)).await;
        }
        if let Some(cluster) = self.cluster_arbiter {
            cluster.stop();
        }
        self.registry_arbiter.stop();
        if let Some(durable) = self.durable {
            // The registry's end drops the engine's queue; its thread then
            // commits what is left and closes the store (the clean mark).
            let registry = self.registry_arbiter;
            let joined = actix_web::rt::task::spawn_blocking(move || {
                let _ = registry.join();
                durable.join()
            })
            .await;
            if !matches!(joined, Ok(Ok(()))) {
                log::error!("the durable engine's thread did not end cleanly");
            }
        }
        result
    }
}

/// Sets SO_SNDBUF on an accepted connection (`websocket.socket_send_buffer`).
/// actix hands connections over as `&dyn Any`: a TCP stream, or rustls over one.
fn cap_send_buffer(conn: &dyn std::any::Any, bytes: usize) {
    use actix_web::rt::net::TcpStream;
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>;
    let tcp = conn
        .downcast_ref::<TcpStream>()
        .or_else(|| conn.downcast_ref::<Tls>().map(|tls| tls.get_ref().0));
    let result = match tcp {
        Some(tcp) => {
            rustix::net::sockopt::set_socket_send_buffer_size(tcp, bytes).map_err(io::Error::from)
        }
        None => Err(io::Error::other("not a TCP connection")),
    };
    if let Err(e) = result {
        log::debug!("websocket.socket_send_buffer not applied: {e}");
    }
}

impl HubHandle {
    /// Graceful drain (contract section 8): `/readyz` turns 503 and `active`
    /// false, new upgrades get 503, every session gets 1001 after what is
    /// queued for it, then the server stops, all within `shutdown_grace_s`.
    pub async fn drain(&self) {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_s);
        let deadline = Instant::now() + grace.saturating_sub(HTTP_SHUTDOWN);
        self.begin_drain().await;
        let mut sessions = self.sessions.clone();
        let gone = tokio::time::timeout_at(deadline.into(), sessions.wait_for(|n| *n == 0)).await;
        if gone.is_err() {
            log::warn!(
                "drain: {} sessions still open after the grace period; closing them",
                *self.sessions.borrow()
            );
        }
        self.server.stop(true).await;
    }

    /// The first half of [`drain`](Self::drain): stop accepting and tell every
    /// session to go, without waiting or stopping the server. Answers how many
    /// sessions were told.
    pub async fn begin_drain(&self) -> usize {
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let told = self.state.registry.probe(Drain).await.unwrap_or(0);
        log::info!("draining: {told} sessions told to reconnect elsewhere");
        told
    }

    /// Stops at once, without draining.
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        *self.sessions.borrow()
    }
}

/// Runs a hub until SIGTERM or SIGINT, then drains it. For the binary.
pub async fn run_until_signal(prepared: Prepared) -> io::Result<()> {
    let hub = Hub::bind(prepared)?;
    let handle = hub.handle();
    actix_rt::spawn(async move {
        match wait_for_signal().await {
            Ok(name) => log::info!("{name} received: draining"),
            Err(e) => {
                log::error!("cannot listen for signals ({e}); hub runs until killed");
                return;
            }
        }
        handle.drain().await;
    });
    hub.run().await
}

async fn wait_for_signal() -> io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// A hub running on a thread of its own: for tests and embedding.
pub struct SpawnedHub {
    /// The first bound address.
    pub addr: SocketAddr,
    /// Control over it.
    pub handle: HubHandle,
}

impl SpawnedHub {
    /// `http://ADDR{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR{path}`.
    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for SpawnedHub {
    fn drop(&mut self) {
        // Sends the stop command now; the hub's thread ends on its own.
        drop(self.handle.server.stop(false));
    }
}

/// Binds `config` and serves it on a new thread; returns once it listens.
pub fn spawn(config: Config) -> io::Result<SpawnedHub> {
    let prepared = Prepared::new(config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("realtime-hub".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                match Hub::bind(prepared) {
                    Ok(hub) => {
                        let first = hub.addrs().first().copied();
                        let _ = tx.send(first.map(|a| (a, hub.handle())).ok_or_else(|| {
                            io::Error::new(io::ErrorKind::AddrNotAvailable, "bound to no address")
                        }));
                        if let Err(e) = hub.run().await {
                            log::error!("hub stopped with an error: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    let (addr, handle) = rx
        .recv()
        .map_err(|_| io::Error::other("hub thread ended before binding"))??;
    Ok(SpawnedHub { addr, handle })
}
