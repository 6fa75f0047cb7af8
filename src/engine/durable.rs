//! The durable engine (`storage.path`, the single-node default): the memory
//! engine's order, written to the local store before anything is acknowledged
//! or delivered (contract section 10).
//!
//! Seqs are assigned on the engine's own thread, which owns every room's order
//! and the recent idempotency keys. It takes every job waiting when it starts a
//! commit — group commit: one store transaction (one fsync) per batch of
//! publishes, paid off the registry's thread — and hands each job's outcome to
//! the registry as `Committed`. A failed write (disk full, I/O error) takes the
//! batch's assignments back, so the same seqs are given again once writes
//! succeed: nothing unwritten is delivered and no seq is given twice.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::memory::committed;
use super::sequencer::{Assigned, Order, Sequencer, Undo};
use super::{CommitSink, Committed, ControlOp, Engine, Gathered, PublishJob, Readiness, RoomState};
use crate::config::{Config, RoomSettings};
use crate::error::HubError;
use crate::event::Event;
use crate::event::KeyChange;
use crate::idempotency::Landed;
use crate::ids::new_epoch;
use crate::store::{NewKey, RoomRecord, StateChange, Store, StoreError, StoreSettings, WriteOp};

/// Jobs waiting for the engine's thread before a publish is refused with 503
/// rather than queued without bound.
const QUEUE: usize = 16_384;

/// Most publish jobs in one commit, so one commit's latency stays bounded.
const MAX_BATCH: usize = 4096;

/// What the registry asks of the engine's thread.
enum Job {
    /// A room opened with this epoch (a new room: head 0).
    Open(Arc<str>, Arc<str>),
    /// A room left; a dynamic room's data is dropped from the store.
    Close(Arc<str>, bool),
    /// Publishes to order, write and answer.
    Publish(PublishJob),
}

/// The registry's side of the engine; see the module docs.
pub struct DurableEngine {
    jobs: mpsc::SyncSender<Job>,
    restored: Vec<(Arc<str>, RoomState)>,
}

/// The engine's thread, not yet started (it needs the registry's handle).
pub struct DurableTasks {
    jobs: mpsc::Receiver<Job>,
    store: Store,
    order: Sequencer,
    persisted: HashSet<Arc<str>>,
    keep_keys: usize,
}

impl DurableEngine {
    /// Opens the store at `storage.path` (locking it), loads every room, and
    /// gives a new epoch, written before anything is served, to each room
    /// whose tail the store cannot vouch for.
    pub fn open(config: &Config) -> Result<(DurableEngine, DurableTasks, Readiness), StoreError> {
        let settings = StoreSettings {
            path: config.storage.path.clone().into(),
            fsync: config.storage.fsync,
        };
        let (store, records) = Store::open(&settings)?;
        let key_ttl = Duration::from_secs(config.rooms.idempotency_ttl_s);
        let mut order = Sequencer::new(key_ttl, config.rooms.idempotency_keys_per_room);
        let mut persisted = HashSet::new();
        let mut restored = Vec::with_capacity(records.len());
        let mut fresh_epochs = Vec::new();
        let mut keys = Vec::new();
        for record in records {
            let room: Arc<str> = Arc::from(record.name.as_str());
            let state = if record.needs_new_epoch {
                let epoch: Arc<str> = Arc::from(new_epoch());
                log::warn!(
                    "store {}: room {room} may have lost events it did not sync (fsync = false, machine restarted): new epoch {epoch}",
                    settings.path.display()
                );
                fresh_epochs.push(WriteOp::Epoch {
                    room: room.to_string(),
                    epoch: epoch.to_string(),
                    head: 0,
                });
                RoomState {
                    epoch,
                    seq: 0,
                    events: Vec::new(),
                    state: Vec::new(),
                }
            } else {
                keys.extend(record.keys.iter().map(|k| (room.clone(), k.clone())));
                restore(&record)
            };
            order.restore(
                room.clone(),
                Order {
                    epoch: state.epoch.clone(),
                    head: state.seq,
                },
            );
            order.restore_state(
                room.clone(),
                state
                    .state
                    .iter()
                    .filter_map(|e| e.key.as_ref().map(|k| k.key.clone())),
            );
            persisted.insert(room.clone());
            restored.push((room, state));
        }
        let now_ms = unix_ms();
        keys.sort_by_key(|(_, k)| k.expires_unix_ms);
        for (room, k) in keys {
            let left = Duration::from_millis(k.expires_unix_ms.saturating_sub(now_ms));
            let landed = Landed {
                epoch: Arc::from(k.epoch.as_str()),
                seq: k.seq,
            };
            order.restore_key(room, &k.key, landed, Instant::now() + left);
        }
        if !fresh_epochs.is_empty() {
            commit(&store, fresh_epochs)?;
        }
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let ready = store.clone();
        let readiness: Readiness = Arc::new(move || ready.health());
        log::info!(
            "store {}: {} rooms restored (fsync {})",
            settings.path.display(),
            restored.len(),
            if settings.fsync { "on" } else { "off" }
        );
        let tasks = DurableTasks {
            jobs: rx,
            store,
            order,
            persisted,
            keep_keys: config.rooms.idempotency_keys_per_room,
        };
        Ok((DurableEngine { jobs: tx, restored }, tasks, readiness))
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j,
        })
    }
}

/// A room's state as the store returned it.
fn restore(record: &RoomRecord) -> RoomState {
    RoomState {
        epoch: Arc::from(record.epoch.as_str()),
        seq: record.head,
        events: record
            .events
            .iter()
            .map(|(seq, frame)| Event::plain(*seq, frame.clone()))
            .collect(),
        state: record
            .state
            .iter()
            .map(|s| Event {
                seq: s.seq,
                frame: s.frame.clone(),
                key: Some(KeyChange {
                    key: Arc::from(s.key.as_str()),
                    delete: false,
                }),
            })
            .collect(),
    }
}

fn unix_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Submits ops and waits until they are committed (the engine's thread, and
/// start-up, may wait; the registry never does).
fn commit(store: &Store, ops: Vec<WriteOp>) -> Result<(), StoreError> {
    let (tx, rx) = mpsc::sync_channel(1);
    store.submit(
        ops,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    rx.recv().unwrap_or_else(|_| {
        Err(StoreError::Refused {
            room: "-".into(),
            detail: "the store's writer stopped".into(),
        })
    })
}

fn unavailable(err: &StoreError) -> HubError {
    HubError::Unavailable(format!("store write failed: {err}"))
}

impl Engine for DurableEngine {
    fn is_cluster(&self) -> bool {
        false
    }

    fn restored(&mut self) -> Vec<(Arc<str>, RoomState)> {
        std::mem::take(&mut self.restored)
    }

    fn open(
        &mut self,
        room: &Arc<str>,
        _: &RoomSettings,
        _: bool,
    ) -> Result<Option<RoomState>, HubError> {
        // Every room the store holds was restored at start; one opened now is
        // new. Its epoch is written with its first event.
        let epoch: Arc<str> = Arc::from(new_epoch());
        self.send(Job::Open(room.clone(), epoch.clone()))
            .map_err(|_| HubError::Unavailable("store busy: too many writes waiting".into()))?;
        Ok(Some(RoomState {
            epoch,
            seq: 0,
            events: Vec::new(),
            state: Vec::new(),
        }))
    }

    fn catch_up(&mut self, _: &Arc<str>) -> Result<bool, HubError> {
        Ok(false)
    }

    fn close(&mut self, room: &Arc<str>, dynamic: bool) {
        if self.send(Job::Close(room.clone(), dynamic)).is_err() {
            log::warn!("store busy: room {room} left the registry but not the store");
        }
    }

    fn publish(&mut self, job: PublishJob) -> Option<Committed> {
        match self.send(Job::Publish(job)) {
            Ok(()) => None,
            Err(Job::Publish(job)) => Some(Committed::failed(
                job,
                &HubError::Unavailable("store busy: too many writes waiting".into()),
            )),
            Err(_) => None,
        }
    }

    fn ask_all(&mut self, _: ControlOp, reply: Gathered) -> Result<(), Gathered> {
        Err(reply)
    }
}

impl DurableTasks {
    /// Runs the engine's thread until the registry's side is dropped.
    pub fn start(self, registry: impl CommitSink) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("durable-engine".into())
            .spawn(move || self.run(registry))
            .unwrap_or_else(|e| panic!("cannot start the durable engine's thread: {e}"))
    }

    fn run(mut self, registry: impl CommitSink) {
        while let Ok(first) = self.jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch, &registry);
        }
        if let Err(e) = self.store.close() {
            log::warn!("store: closing: {e}");
        }
    }

    /// One store transaction for everything waiting; outcomes to the registry.
    fn commit_batch(&mut self, batch: Vec<Job>, registry: &impl CommitSink) {
        let mut ops = Vec::new();
        let mut publishes = Vec::new();
        let mut undos: Vec<Undo> = Vec::new();
        let mut new_rooms: Vec<Arc<str>> = Vec::new();
        let now_ms = unix_ms();
        let key_ttl_ms = self.order.key_ttl().as_millis() as u64;
        for job in batch {
            match job {
                Job::Open(room, epoch) => {
                    self.order.restore(room.clone(), Order { epoch, head: 0 });
                    self.persisted.remove(&room);
                }
                Job::Close(room, dynamic) => {
                    self.order.close(&room);
                    if dynamic && self.persisted.remove(&room) {
                        ops.push(WriteOp::Drop {
                            room: room.to_string(),
                        });
                    }
                }
                Job::Publish(job) => {
                    let (assigned, undo) = self.order.assign(&job.items);
                    for (a, item) in assigned.iter().zip(&job.items) {
                        let Assigned::Event(ev, _) = a else {
                            continue;
                        };
                        if !self.persisted.contains(&ev.room) && !new_rooms.contains(&ev.room) {
                            ops.push(WriteOp::Epoch {
                                room: ev.room.to_string(),
                                epoch: ev.epoch.to_string(),
                                head: ev.event.seq - 1,
                            });
                            new_rooms.push(ev.room.clone());
                        }
                        ops.push(WriteOp::Append {
                            room: ev.room.to_string(),
                            epoch: ev.epoch.to_string(),
                            seq: ev.event.seq,
                            frame: ev.event.frame.clone(),
                            keep: item.history,
                            key: item
                                .idempotency_key
                                .as_ref()
                                .filter(|_| self.order.keys_enabled())
                                .map(|k| NewKey {
                                    key: k.clone(),
                                    expires_unix_ms: now_ms + key_ttl_ms,
                                    keep_keys: self.keep_keys,
                                }),
                            state: ev.event.key.as_ref().map(|k| StateChange {
                                key: k.key.to_string(),
                                delete: k.delete,
                            }),
                        });
                    }
                    undos.push(undo);
                    publishes.push((assigned, job));
                }
            }
        }
        if ops.is_empty() {
            // Duplicates only (or opens): nothing to write.
            for (assigned, job) in publishes {
                registry.committed(committed(assigned, job));
            }
            return;
        }
        let started = Instant::now();
        let result = commit(&self.store, ops);
        crate::metrics::store_commit(started.elapsed(), result.is_ok());
        match result {
            Ok(()) => {
                self.persisted.extend(new_rooms);
                crate::metrics::store_size(self.store.size_bytes());
                for (assigned, job) in publishes {
                    registry.committed(committed(assigned, job));
                }
            }
            Err(err) => {
                log::warn!(
                    "store: a commit of {} publishes failed: {err}",
                    publishes.len()
                );
                for undo in undos.into_iter().rev() {
                    self.order.undo(undo);
                }
                let err = unavailable(&err);
                for (_, job) in publishes {
                    registry.committed(Committed::failed(job, &err));
                }
            }
        }
    }
}
