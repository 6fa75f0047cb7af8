//! `restart`: a durable hub holding N rooms is stopped and started again.
//!
//! A hub on a fresh store (dynamic rooms allowed, room limits raised to fit)
//! gets `events_per_room` events in each of `rooms` dynamic rooms through
//! `POST /api/events` batches. Then, in one round per signal:
//!
//! 1. the hub is stopped (SIGTERM: a clean shutdown; SIGKILL: a crash) and
//!    waited for; the store directory's allocated bytes are read;
//! 2. a new hub is started on the same directory and `/readyz` is polled
//!    every 2 ms from the moment the process is spawned: `restart_ms`;
//! 3. `GET /api/rooms` must list every room with the epoch and head its
//!    publishes were acknowledged with, and one room's history must hold its
//!    events, seqs 1..=head in that epoch.
//!
//! Before the SIGKILL round one more event is published into the sampled room,
//! so the last commit before the crash is an acknowledged publish that must
//! survive it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clock::now_ns;
use crate::http::{BatchOutcome, HubHttp};
use crate::hub::{DiskUsage, HubProcess, StopSignal, Storage};
use crate::latency::round3;
use crate::payload::{event_data, EVENT_TYPE};
use crate::procfs::vm_rss_kib;
use crate::report::Check;

/// How long a hub has to exit after the signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a restarted hub has to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often `/readyz` is asked while a restarted hub loads its store.
const READY_POLL: Duration = Duration::from_millis(2);

/// The most events per room (the hub's default `rooms.history` keeps 100).
pub const MAX_EVENTS_PER_ROOM: usize = 100;

/// What a restart run does.
#[derive(Debug, Clone, Serialize)]
pub struct RestartParams {
    /// Dynamic rooms to create.
    pub rooms: usize,
    /// Events published into each room.
    pub events_per_room: usize,
    /// Items per `POST /api/events` request.
    pub batch_items: usize,
    /// Batch requests in flight at once.
    pub concurrency: usize,
    /// Also run the SIGKILL round after the SIGTERM one.
    pub kill_round: bool,
    /// The hubs' storage (must be durable); reported at the top of the report.
    #[serde(skip)]
    pub storage: Storage,
    /// The hub binary.
    #[serde(skip)]
    pub hub_bin: PathBuf,
}

/// One stop / start round.
#[derive(Debug, Clone, Serialize)]
pub struct RestartRound {
    /// `SIGTERM` or `SIGKILL`.
    pub signal: &'static str,
    /// From the signal to the process's exit, in ms.
    pub stop_ms: f64,
    /// How the stopped hub ended.
    pub exit_status: String,
    /// The store directory after the stop.
    pub store: DiskUsage,
    /// `store.allocated_bytes` ÷ rooms.
    pub bytes_per_room: f64,
    /// From spawning the new hub to its first `/readyz` 200, in ms.
    pub restart_ms: f64,
    /// Rooms `GET /api/rooms` lists after the restart (the declared ones included).
    pub rooms_listed: u64,
    /// Rooms of the run listed with the epoch and head they were acknowledged with.
    pub rooms_restored: u64,
    /// The first room that was not, and what was wrong.
    pub first_room_problem: Option<String>,
    /// The room whose history was read back.
    pub sample_room: String,
    /// Events its history holds after the restart.
    pub sample_history_events: u64,
    /// Its history is exactly seqs 1..=head, in the acknowledged epoch.
    pub sample_history_ok: bool,
    /// What was wrong with it, if anything.
    pub sample_problem: Option<String>,
    /// The restarted hub's RSS once ready.
    pub hub_rss_after_restart_kib: Option<u64>,
}

/// What a restart run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RestartResult {
    /// Rooms whose every publish was acknowledged.
    pub rooms_created: u64,
    /// Events acknowledged while populating.
    pub events_published: u64,
    /// Items or requests that failed while populating.
    pub publish_errors: u64,
    /// The first such failure.
    pub first_publish_error: Option<String>,
    /// Seconds spent populating.
    pub populate_s: f64,
    /// Acknowledged events per second while populating.
    pub populate_events_per_s: f64,
    /// The first hub's RSS once populated.
    pub hub_rss_populated_kib: Option<u64>,
    /// The clean restart.
    pub term: RestartRound,
    /// The crash restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill: Option<RestartRound>,
}

impl RestartResult {
    /// Every publish acknowledged; after each restart every room back with its
    /// head and the sampled history intact. Restart time and size are reported.
    pub fn checks(&self, params: &RestartParams) -> Vec<Check> {
        let rooms = params.rooms as u64;
        let mut checks = vec![
            Check::equals("publish_errors", self.publish_errors, 0),
            Check::equals("rooms_created", self.rooms_created, rooms),
        ];
        for (round, name) in [
            (Some(&self.term), "sigterm"),
            (self.kill.as_ref(), "sigkill"),
        ] {
            let Some(round) = round else { continue };
            checks.push(Check::equals(
                &format!("{name}_rooms_restored"),
                round.rooms_restored,
                rooms,
            ));
            checks.push(Check::equals(
                &format!("{name}_history_ok"),
                u64::from(round.sample_history_ok),
                1,
            ));
            checks.push(Check::reported(
                &format!("{name}_restart_ms"),
                round.restart_ms,
            ));
            checks.push(Check::reported(
                &format!("{name}_bytes_per_room"),
                round.bytes_per_room,
            ));
        }
        checks
    }
}

/// The room names of a run.
fn room_name(index: usize) -> String {
    format!("restart-{index:06}")
}

/// What the hub acknowledged for one room.
#[derive(Debug, Clone, Default)]
struct Acked {
    epoch: Option<String>,
    head: u64,
    events: u64,
}

/// Runs the scenario: populate, then the SIGTERM round (and the SIGKILL one).
pub async fn run(params: &RestartParams) -> Result<RestartResult> {
    if !params.storage.is_durable() {
        bail!(
            "restart measures a durable store across restarts: run it with --storage durable \
             (a memory hub keeps nothing to restart from)"
        );
    }
    if params.rooms == 0
        || params.events_per_room == 0
        || params.events_per_room > MAX_EVENTS_PER_ROOM
    {
        bail!("restart needs at least one room and 1 to {MAX_EVENTS_PER_ROOM} events per room");
    }
    let env = hub_env(params);
    let mut hub = HubProcess::start_with_env(&params.hub_bin, params.storage, &env).await?;
    hub.wait_ready(READY_TIMEOUT).await?;
    let http = HubHttp::new(hub.endpoint(), params.concurrency.max(1))?;

    let started = Instant::now();
    let populated = populate(&http, params).await;
    let populate_s = started.elapsed().as_secs_f64();
    let hub_rss_populated_kib = hub.endpoint().pid().and_then(|p| vm_rss_kib(p).ok());
    let mut acked = populated.acked;
    let rooms_created = acked
        .values()
        .filter(|a| a.events == params.events_per_room as u64)
        .count() as u64;
    let sample = room_name(params.rooms / 2);

    let (term, mut hub) = round(hub, StopSignal::Term, params, &env, &acked, &sample).await?;
    let kill = if params.kill_round {
        // The last commit before the crash: one more acknowledged event.
        let http = HubHttp::new(hub.endpoint(), 1)?;
        let seq = http
            .publish(&sample, crate::payload::publish_body(now_ns()))
            .await
            .context("publishing into the sampled room before SIGKILL")?;
        let entry = acked.entry(sample.clone()).or_default();
        entry.head = entry.head.max(seq);
        entry.events += 1;
        let (kill, last) = round(hub, StopSignal::Kill, params, &env, &acked, &sample).await?;
        hub = last;
        Some(kill)
    } else {
        None
    };
    drop(hub);
    let events_published = populated.events;
    Ok(RestartResult {
        rooms_created,
        events_published,
        publish_errors: populated.errors,
        first_publish_error: populated.first_error,
        populate_s: round3(populate_s),
        populate_events_per_s: if populate_s > 0.0 {
            (events_published as f64 / populate_s).round()
        } else {
            0.0
        },
        hub_rss_populated_kib,
        term,
        kill,
    })
}

/// The hubs' settings beyond the harness's own: dynamic rooms, and room
/// limits that fit the run.
fn hub_env(params: &RestartParams) -> Vec<(String, String)> {
    let max_rooms = (params.rooms + 100).max(10_000);
    vec![
        ("HUB_ROOMS__ALLOW_DYNAMIC".to_owned(), "true".to_owned()),
        ("HUB_ROOMS__MAX_ROOMS".to_owned(), max_rooms.to_string()),
        // 0 = unlimited (it bounds the dynamic rooms one address's sockets are in).
        ("HUB_ROOMS__MAX_ROOMS_PER_IP".to_owned(), "0".to_owned()),
    ]
}

/// What populating did.
#[derive(Debug, Default)]
struct Populated {
    acked: HashMap<String, Acked>,
    events: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Populated {
    fn fail(&mut self, count: u64, error: String) {
        self.errors += count;
        self.first_error.get_or_insert(error);
    }

    fn add(&mut self, sent: usize, answer: Result<Vec<BatchOutcome>>) {
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(e) => return self.fail(sent as u64, format!("{e:#}")),
        };
        if outcomes.len() != sent {
            let missing = sent.saturating_sub(outcomes.len()) as u64;
            self.fail(
                missing.max(1),
                format!("{sent} items sent, {} results", outcomes.len()),
            );
        }
        for outcome in outcomes {
            match (outcome.seq, outcome.error) {
                (Some(seq), None) => {
                    let entry = self.acked.entry(outcome.room.clone()).or_default();
                    let changed = entry.epoch.is_some() && entry.epoch != outcome.epoch;
                    entry.epoch = outcome.epoch;
                    entry.head = entry.head.max(seq);
                    entry.events += 1;
                    self.events += 1;
                    if changed {
                        let error = format!("{}: epoch changed while populating", outcome.room);
                        self.fail(1, error);
                    }
                }
                (_, error) => {
                    let code = error.unwrap_or_else(|| "no seq".to_owned());
                    self.fail(1, format!("{}: {code}", outcome.room));
                }
            }
        }
    }
}

/// Publishes `events_per_room` events into every room, room by room, in
/// batches of `batch_items`, `concurrency` batches in flight.
async fn populate(http: &HubHttp, params: &RestartParams) -> Populated {
    let total = params.rooms * params.events_per_room;
    let per_batch = params.batch_items.max(1);
    let gate = Arc::new(Semaphore::new(params.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut populated = Populated::default();
    let mut next = 0;
    while next < total {
        let end = (next + per_batch).min(total);
        let body = batch_body(next..end, params.events_per_room);
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (http, sent) = (http.clone(), end - next);
        in_flight.spawn(async move {
            let answer = http.publish_batch(body).await;
            drop(permit);
            (sent, answer)
        });
        while let Some(done) = in_flight.try_join_next() {
            add_joined(&mut populated, done);
        }
        next = end;
    }
    while let Some(done) = in_flight.join_next().await {
        add_joined(&mut populated, done);
    }
    populated
}

fn add_joined(
    populated: &mut Populated,
    joined: Result<(usize, Result<Vec<BatchOutcome>>), tokio::task::JoinError>,
) {
    match joined {
        Ok((sent, answer)) => populated.add(sent, answer),
        Err(e) => populated.fail(1, format!("batch task: {e}")),
    }
}

/// The `POST /api/events` body for items `range` (item `i` is event
/// `i mod events_per_room` of room `i / events_per_room`).
fn batch_body(range: std::ops::Range<usize>, events_per_room: usize) -> String {
    let mut body = String::with_capacity(range.len() * 320 + 2);
    body.push('[');
    for (n, i) in range.enumerate() {
        if n > 0 {
            body.push(',');
        }
        let room = room_name(i / events_per_room);
        body.push_str(&format!(
            "{{\"room\":\"{room}\",\"type\":\"{EVENT_TYPE}\",\"data\":{}}}",
            event_data(now_ns())
        ));
    }
    body.push(']');
    body
}

/// Stops `hub` with `signal`, starts a new hub on its store, and checks what
/// came back; returns the round and the new hub.
async fn round(
    mut hub: HubProcess,
    signal: StopSignal,
    params: &RestartParams,
    env: &[(String, String)],
    acked: &HashMap<String, Acked>,
    sample: &str,
) -> Result<(RestartRound, HubProcess)> {
    let stopped = hub.stop(signal, STOP_TIMEOUT).await?;
    let store = hub.take_store()?;
    drop(hub);
    let usage = store.disk_usage()?;
    let mut next = HubProcess::spawn(&params.hub_bin, params.storage, Some(store), env)?;
    let ready = next
        .wait_ready_polling(READY_TIMEOUT, READY_POLL)
        .await
        .with_context(|| format!("restarting after {}", signal.name()))?;
    let hub_rss_after_restart_kib = next.endpoint().pid().and_then(|p| vm_rss_kib(p).ok());
    let http = HubHttp::new(next.endpoint(), 1)?;
    let listed = http
        .rooms()
        .await
        .context("listing rooms after the restart")?;
    let (rooms_restored, first_room_problem) = compare_rooms(&listed, acked, params.rooms);
    let (sample_history_events, sample_problem) = match http.history(sample).await {
        Ok(history) => {
            let events = history.events.len() as u64;
            (events, history_problem(&history, acked.get(sample)))
        }
        Err(e) => (0, Some(format!("{e:#}"))),
    };
    let bytes_per_room = usage.allocated_bytes as f64 / params.rooms.max(1) as f64;
    let round = RestartRound {
        signal: signal.name(),
        stop_ms: ms(stopped.took),
        exit_status: stopped.status,
        store: usage,
        bytes_per_room: bytes_per_room.round(),
        restart_ms: ms(ready),
        rooms_listed: listed.len() as u64,
        rooms_restored,
        first_room_problem,
        sample_room: sample.to_owned(),
        sample_history_events,
        sample_history_ok: sample_problem.is_none(),
        sample_problem,
        hub_rss_after_restart_kib,
    };
    Ok((round, next))
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

/// Rooms of the run listed with their acknowledged epoch and head, and the
/// first one that was not.
fn compare_rooms(
    listed: &[crate::http::RoomListing],
    acked: &HashMap<String, Acked>,
    rooms: usize,
) -> (u64, Option<String>) {
    let by_name: HashMap<&str, &crate::http::RoomListing> =
        listed.iter().map(|r| (r.room.as_str(), r)).collect();
    let mut restored = 0;
    let mut first_problem = None;
    for index in 0..rooms {
        let name = room_name(index);
        let problem = match (acked.get(&name), by_name.get(name.as_str())) {
            (None, _) => Some(format!("{name}: nothing acknowledged")),
            (Some(_), None) => Some(format!("{name}: not listed")),
            (Some(want), Some(got)) if want.epoch.as_deref() != Some(got.epoch.as_str()) => {
                Some(format!(
                    "{name}: epoch {} (acknowledged {:?})",
                    got.epoch, want.epoch
                ))
            }
            (Some(want), Some(got)) if got.seq != want.head => Some(format!(
                "{name}: head {} (acknowledged {})",
                got.seq, want.head
            )),
            _ => None,
        };
        match problem {
            None => restored += 1,
            Some(p) => {
                first_problem.get_or_insert(p);
            }
        }
    }
    (restored, first_problem)
}

/// What is wrong with a room's history after a restart, if anything: it must
/// be seqs 1..=head of the acknowledged epoch.
fn history_problem(history: &crate::http::RoomHistory, want: Option<&Acked>) -> Option<String> {
    let Some(want) = want else {
        return Some("nothing was acknowledged for it".to_owned());
    };
    if want.epoch.as_deref() != Some(history.epoch.as_str()) {
        return Some(format!(
            "epoch {} (acknowledged {:?})",
            history.epoch, want.epoch
        ));
    }
    if history.seq != want.head {
        return Some(format!("head {} (acknowledged {})", history.seq, want.head));
    }
    let seqs: Vec<u64> = history.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=want.head).collect();
    if seqs != expected {
        return Some(format!(
            "{} events, seqs {:?}…, want 1..={}",
            seqs.len(),
            seqs.iter().take(5).collect::<Vec<_>>(),
            want.head
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HistoryEvent, RoomHistory, RoomListing};

    fn acked(epoch: &str, head: u64) -> Acked {
        Acked {
            epoch: Some(epoch.to_owned()),
            head,
            events: head,
        }
    }

    #[test]
    fn batch_body_spreads_items_room_by_room() {
        let body = batch_body(3..7, 2);
        let items: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON array");
        let rooms: Vec<_> = items
            .iter()
            .map(|i| i["room"].as_str().unwrap_or("?").to_owned())
            .collect();
        assert_eq!(
            rooms,
            [
                "restart-000001",
                "restart-000002",
                "restart-000002",
                "restart-000003"
            ]
        );
        assert!(items.iter().all(|i| i["type"] == EVENT_TYPE));
        assert!(items.iter().all(|i| i["data"]["t_ns"].is_u64()));
    }

    #[test]
    fn populating_counts_acks_and_errors() {
        let mut p = Populated::default();
        let ok = |room: &str, seq| BatchOutcome {
            room: room.to_owned(),
            seq: Some(seq),
            epoch: Some("e1".to_owned()),
            error: None,
        };
        let refused = BatchOutcome {
            room: "b".to_owned(),
            seq: None,
            epoch: None,
            error: Some("unavailable".to_owned()),
        };
        p.add(3, Ok(vec![ok("a", 1), ok("a", 2), refused]));
        p.add(2, Err(anyhow::anyhow!("connection refused")));
        p.add(2, Ok(vec![ok("c", 1)]));
        assert_eq!(p.events, 3);
        assert_eq!(p.errors, 4);
        assert_eq!(p.first_error.as_deref(), Some("b: unavailable"));
        assert_eq!(p.acked["a"].head, 2);
        assert_eq!(p.acked["a"].events, 2);
    }

    #[test]
    fn rooms_are_restored_only_with_their_epoch_and_head() {
        let mut want = HashMap::new();
        for i in 0..4 {
            want.insert(room_name(i), acked("e", 10));
        }
        let listing = |i: usize, epoch: &str, seq| RoomListing {
            room: room_name(i),
            epoch: epoch.to_owned(),
            seq,
            history: seq,
        };
        let listed = vec![
            listing(0, "e", 10),
            listing(1, "other", 10),
            listing(2, "e", 9),
        ];
        let (restored, problem) = compare_rooms(&listed, &want, 4);
        assert_eq!(restored, 1);
        assert!(problem.is_some_and(|p| p.contains("restart-000001")));
    }

    #[test]
    fn history_must_be_every_seq_of_the_epoch() {
        let history = |epoch: &str, seqs: &[u64]| RoomHistory {
            epoch: epoch.to_owned(),
            seq: seqs.last().copied().unwrap_or(0),
            events: seqs.iter().map(|&seq| HistoryEvent { seq }).collect(),
        };
        let want = acked("e", 3);
        assert_eq!(
            history_problem(&history("e", &[1, 2, 3]), Some(&want)),
            None
        );
        assert!(history_problem(&history("e", &[1, 3]), Some(&want)).is_some());
        assert!(history_problem(&history("x", &[1, 2, 3]), Some(&want)).is_some());
        assert!(history_problem(&history("e", &[1, 2]), Some(&want)).is_some());
        assert!(history_problem(&history("e", &[1, 2, 3]), None).is_some());
    }
}
