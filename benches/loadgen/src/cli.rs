//! Command line: subcommands, their options, and where the hub comes from.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use hub_bench::hub::{Storage, BENCH_ROOM};
use hub_bench::scenario::cluster::Topology;
use hub_bench::transport::Transport;

/// `keyed-vs-plain` (and `all`) meet their target when the keyed room's
/// `fanout-max` deliveries per second are at least this share of the plain
/// room's.
pub const KEYED_VS_PLAIN_TARGET: f64 = 0.9;

/// Load generator for realtime-hub: idle connections, fan-out, saturation,
/// churn, publish rates and store restarts, over loopback only. Each run
/// prints one JSON line.
#[derive(Debug, Parser)]
#[command(name = "hub-bench", version)]
pub struct Cli {
    /// A hub that is already running (loopback only), e.g. http://127.0.0.1:9100.
    /// Without it, each scenario starts a fresh hub from --hub-bin.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The pid of the hub at --url, for RSS and CPU readings.
    #[arg(long, global = true)]
    pub hub_pid: Option<u32>,
    /// The hub binary to start when no --url is given.
    #[arg(long, global = true, default_value = "target/release/realtime-hub")]
    pub hub_bin: PathBuf,
    /// The room to use (it must exist on a hub given with --url).
    #[arg(long, global = true, default_value = BENCH_ROOM)]
    pub room: String,
    /// Hard limit on the whole invocation, in seconds.
    #[arg(long, global = true, default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_run_s: u64,
    /// Where each hub the harness starts keeps its rooms: `memory` (no store,
    /// HUB_STORAGE__PATH="") or `durable` (a fresh store directory per hub in
    /// the temp directory, removed with the hub).
    #[arg(long, global = true, value_enum, default_value_t = StorageMode::Memory)]
    pub storage: StorageMode,
    /// With --storage durable: sync every commit before acknowledging it
    /// (HUB_STORAGE__FSYNC).
    #[arg(long, global = true, default_value_t = true, action = ArgAction::Set)]
    pub fsync: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `--storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageMode {
    /// No store: rooms live in memory only.
    Memory,
    /// A store on disk, one fresh directory per hub.
    Durable,
}

impl Cli {
    /// The storage of the hubs the harness starts.
    pub fn storage(&self) -> Storage {
        match self.storage {
            StorageMode::Memory => Storage::Memory,
            StorageMode::Durable => Storage::Durable { fsync: self.fsync },
        }
    }
}

/// `--transport`: how subscribers (or idle clients) connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TransportArg {
    /// WebSocket (`/ws`, `/ws/{room}`).
    #[default]
    Websocket,
    /// Server-Sent Events (`/sse?rooms={room}`), read by the harness's own
    /// client on raw TCP.
    Sse,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Websocket => Transport::Websocket,
            TransportArg::Sse => Transport::Sse,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hold N idle WebSocket connections; hub RSS per connection, /socket-status.
    Conns(ConnsArgs),
    /// S subscribers on one room, HTTP publishes at rate R for D seconds.
    Fanout(FanoutArgs),
    /// S subscribers on one room, publishing as fast as the hub accepts.
    FanoutMax(FanoutMaxArgs),
    /// Connect / first frame / subscribe / close cycles.
    Churn(ChurnArgs),
    /// A keyed room with N keys: fresh subscribers one at a time and then all
    /// at once, subscribe to the last state frame; hub RSS per key.
    KeyedReplay(KeyedReplayArgs),
    /// fanout-max on a plain room, then on a keyed room (every publish keyed),
    /// back to back; the keyed / plain ratio of deliveries per second.
    KeyedVsPlain(KeyedVsPlainArgs),
    /// HTTP publishes into one room at a target rate, open loop; acknowledged
    /// publishes per second, round trips, and (with subscribers) exact delivery.
    PublishRate(PublishRateArgs),
    /// The round trip of one publish at a low rate, one request in flight.
    PublishRtt(PublishRttArgs),
    /// A durable hub with N rooms stopped (SIGTERM, then SIGKILL) and started
    /// again on its store: store size per room, time to /readyz, rooms back.
    Restart(RestartArgs),
    /// Every scenario of the target table in sequence, then a markdown table
    /// (with --storage durable also publish-rate, publish-rtt and restart).
    All(AllArgs),
    /// One fan-out against 1 hub without Redis, 1 hub on Redis and N hubs on
    /// Redis (own redis-server), at a rate and flat out; then a comparison table.
    Cluster(ClusterArgs),
    /// N members (one user each) on a presence room: join / leave latency and
    /// hub CPU, `presence` answer times, hub RSS per member against a hub
    /// without presence.
    Presence(PresenceArgs),
    /// Two hub nodes on a Redis primary, replicas and 3 Sentinels (all started
    /// here), clients dropped and resuming, HTTP publishes with idempotency
    /// keys and retries, and faults: primary SIGKILLed, a hub node SIGKILLed
    /// and restarted, a Sentinel killed. Exact accounting of acked events.
    Soak(SoakArgs),
    /// (internal) hold a share of `conns` sockets; driven over stdin/stdout.
    #[command(hide = true)]
    ConnsWorker(WorkerArgs),
}

/// Options of `conns`.
#[derive(Debug, Args)]
pub struct ConnsArgs {
    /// Idle sockets to hold.
    #[arg(long, default_value_t = 18_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub count: u64,
    /// Sockets per worker process at most (one process may hold 20,000 fds).
    #[arg(long, default_value_t = 9_000, value_parser = clap::value_parser!(u64).range(1..=9_500))]
    pub per_worker: u64,
    /// Loopback source addresses per worker (each address has ~28k ports).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub sources_per_worker: u64,
    /// Handshakes in flight per worker.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub concurrency: u64,
    /// Seconds to hold the idle sockets while sampling /socket-status.
    #[arg(long, default_value_t = 3.0, value_parser = seconds)]
    pub hold_s: f64,
    /// Milliseconds between /socket-status samples.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub status_interval_ms: u64,
    /// Also run a fan-out with this many subscribers while the sockets are held.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_500))]
    pub fanout_subs: Option<u64>,
    /// Events per second of that fan-out.
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    pub fanout_rate: f64,
    /// Seconds of that fan-out.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub fanout_duration_s: f64,
    /// How the idle clients connect: WebSocket on `/ws`, or SSE streams on
    /// `/sse?rooms=ROOM` (each subscribed to --room).
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    pub transport: TransportArg,
    /// WebSocket clients subscribe to --room (`/ws/ROOM`, waiting for
    /// `subscribed`), like an SSE stream, instead of connecting to `/ws`.
    #[arg(long)]
    pub subscribe: bool,
}

/// Options of `fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Subscribers.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subs: u64,
    /// Events per second.
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Publish requests in flight at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub publishers: u64,
    /// Target: latency p99 at most this (ms).
    #[arg(long)]
    pub target_p99_ms: Option<f64>,
    /// Target: latency p50 at most this (ms).
    #[arg(long)]
    pub target_p50_ms: Option<f64>,
    /// Target: publish round trip p50 at most this (ms).
    #[arg(long)]
    pub target_publish_p50_ms: Option<f64>,
    /// How subscribers connect: WebSocket (`/ws/ROOM`) or SSE (`/sse?rooms=ROOM`).
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    pub transport: TransportArg,
}

/// Options of `fanout-max`.
#[derive(Debug, Args)]
pub struct FanoutMaxArgs {
    /// Subscribers.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subs: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Publish loops running back to back.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub publishers: u64,
    /// Target: deliveries per second at least this.
    #[arg(long)]
    pub target_deliveries_per_s: Option<f64>,
    /// Make the room keyed (HUB_ROOMS__KEYED=true on the hub the harness
    /// starts) and give every publish a key, cycling over --keys keys.
    #[arg(long)]
    pub keyed: bool,
    /// With --keyed: distinct keys the publishes cycle over (the state's size).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,
    /// How subscribers connect: WebSocket (`/ws/ROOM`) or SSE (`/sse?rooms=ROOM`).
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    pub transport: TransportArg,
}

/// Options of `keyed-replay`.
#[derive(Debug, Args)]
pub struct KeyedReplayArgs {
    /// Distinct keys to publish (one event each) before the replays.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,
    /// Fresh subscribers one at a time, then as many at once.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub subscribers: u64,
    /// Items per `POST /api/events` batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub batch_items: u64,
    /// Batches in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Milliseconds to wait after publishing before the "after" RSS reading.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub settle_ms: u64,
}

/// Options of `keyed-vs-plain`.
#[derive(Debug, Args)]
pub struct KeyedVsPlainArgs {
    /// Subscribers.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subs: u64,
    /// Seconds of publishing in each run.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Publish loops running back to back.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub publishers: u64,
    /// Distinct keys the keyed run's publishes cycle over.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,
    /// Pairs of runs (plain, then keyed); the ratio is of the medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub repeat: u64,
    /// Target: keyed deliveries/s at least this share of the plain room's.
    #[arg(long, default_value_t = KEYED_VS_PLAIN_TARGET)]
    pub target_ratio: f64,
}

/// Options of `churn`.
#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// Cycles.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub cycles: u64,
    /// Cycles in flight.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub concurrency: u64,
    /// Loopback source addresses to spread the cycles over.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub source_ips: u64,
    /// End each cycle when the hub closes TCP rather than when it answers the close frame.
    #[arg(long)]
    pub await_tcp_close: bool,
    /// Unmeasured cycles before the "before" RSS reading (first-use allocations).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub warmup_cycles: u64,
}

/// Options of `publish-rate`.
#[derive(Debug, Args)]
pub struct PublishRateArgs {
    /// Publishes per second offered (on a fixed schedule, not waiting for answers).
    #[arg(long, default_value_t = 10_000.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Subscribers on the room, for exact delivery accounting (0: none).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub subs: u64,
    /// Publish requests (keep-alive connections) in flight at most; the
    /// schedule falls behind only when all of them wait for answers.
    /// (512 holds 10,000/s up to a mean round trip of 51 ms.)
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=4_096))]
    pub max_in_flight: u64,
}

/// Options of `publish-rtt`.
#[derive(Debug, Args)]
pub struct PublishRttArgs {
    /// Publishes per second.
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Publish requests in flight at most (1: sequential).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub in_flight: u64,
    /// Subscribers on the room (0: none).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub subs: u64,
    /// Target: publish round trip p50 at most this (ms).
    #[arg(long, default_value_t = 3.0)]
    pub target_p50_ms: f64,
}

/// Options of `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Dynamic rooms to create.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rooms: u64,
    /// Events published into each room (the hub's history keeps 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub events_per_room: u64,
    /// Items per `POST /api/events` batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub batch_items: u64,
    /// Batches in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Skip the SIGKILL round (only the SIGTERM restart).
    #[arg(long)]
    pub no_kill: bool,
}

/// Options of `cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Subscribers in total (spread evenly over the nodes).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subs: u64,
    /// Events per second of the fixed-rate run.
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of publishing in the fixed-rate run.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub duration_s: f64,
    /// Publish requests in flight at most in the fixed-rate run.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub publishers: u64,
    /// Seconds of the flat-out run (publishing as fast as accepted).
    #[arg(long, default_value_t = 3.0, value_parser = seconds)]
    pub max_duration_s: f64,
    /// Publish loops of the flat-out run.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub max_publishers: u64,
    /// Skip the flat-out run.
    #[arg(long)]
    pub no_max: bool,
    /// Skip the fixed-rate run.
    #[arg(long)]
    pub no_rate: bool,
    /// Hubs in the multi-node cluster.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=8))]
    pub nodes: u64,
    /// The topologies to run, in this order (default: single, cluster-1, cluster-N).
    #[arg(long, value_delimiter = ',')]
    pub topologies: Option<Vec<Topology>>,
    /// Runs of each topology; the topologies take turns.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub repeat: u64,
    /// The Redis server binary (one private server is started per cluster run,
    /// on a free loopback port, without persistence).
    #[arg(long, default_value = "redis-server")]
    pub redis_bin: PathBuf,
}

/// Options of `soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Seconds of publishing and faults (faults are scaled to it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub duration_s: u64,
    /// WebSocket clients, spread over 127.0.0.x source addresses.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// HTTP publishes per second.
    #[arg(long, default_value_t = 200.0, value_parser = rate)]
    pub rate: f64,
    /// Redis replicas besides the primary (1 or 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=2))]
    pub replicas: u64,
    /// Sentinel down-after-milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=30_000))]
    pub down_after_ms: u64,
    /// Seconds between primary kills (failovers); 0 = one per third of the run.
    #[arg(long, default_value_t = 0)]
    pub failover_every_s: u64,
    /// Shortest life of a client connection before the harness drops it (s).
    #[arg(long, default_value_t = 5)]
    pub min_life_s: u64,
    /// Longest life of a client connection before the harness drops it (s).
    #[arg(long, default_value_t = 30)]
    pub max_life_s: u64,
    /// Events the room keeps for resumes (HUB_ROOMS__HISTORY; the hub's default
    /// 100 is half a second at 200/s, so most resumes would get recovered:false).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub history: u64,
    /// The Redis server binary (also run as `--sentinel`).
    #[arg(long, default_value = "redis-server")]
    pub redis_bin: PathBuf,
}

/// Options of `all`.
#[derive(Debug, Args)]
pub struct AllArgs {
    /// Scale every count and duration by this factor (1 = the sizes;
    /// a smaller one is a quick smoke run whose targets still use full-size limits).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

/// Options of `presence`.
#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// Members (distinct users `u0`, `u1`, …), one session each.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=18_000))]
    pub members: u64,
    /// Joins and leaves timed one at a time (the last members to join).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=5_000))]
    pub sample: u64,
    /// Asks of each kind (`presence` command, HTTP), unchanged and after a change.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub asks: u64,
    /// Handshakes in flight while the bulk of the members connect.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub concurrency: u64,
    /// Members per loopback source address (each has ~28k ports).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=20_000))]
    pub per_source: u64,
    /// Skip the hub without presence (no presence-only memory figure).
    #[arg(long)]
    pub no_baseline: bool,
    /// Milliseconds to wait before each RSS reading.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub settle_ms: u64,
}

/// Options of the hidden `conns-worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Sockets to hold.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=9_500))]
    pub count: u64,
    /// Index of the first source address (0 = 127.0.0.2).
    #[arg(long)]
    pub first_source: usize,
    /// Source addresses.
    #[arg(long, default_value_t = 2)]
    pub sources: usize,
    /// Handshakes in flight.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds after which the worker exits by itself.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub max_life_s: u64,
    /// How the clients connect.
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    pub transport: TransportArg,
    /// WebSocket clients subscribe to --room.
    #[arg(long)]
    pub subscribe: bool,
}

/// A duration in seconds: more than 0, at most 600.
fn seconds(text: &str) -> Result<f64, String> {
    bounded(text, 600.0)
}

/// Events per second: more than 0, at most 100,000.
fn rate(text: &str) -> Result<f64, String> {
    bounded(text, 100_000.0)
}

fn bounded(text: &str, max: f64) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("not a number: {e}"))?;
    if value > 0.0 && value <= max {
        Ok(value)
    } else {
        Err(format!("must be more than 0 and at most {max}"))
    }
}
