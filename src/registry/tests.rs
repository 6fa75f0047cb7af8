//! The registry's ordering and recovery logic against a fake engine (#13).
//!
//! The test plays the engine: [`FakeEngine`] records what it is asked and
//! keeps every publish job; the test picks the seqs and sends `Committed`,
//! answers `open` at once or later (`RoomSynced`, `SyncFailed`), and reads
//! what each fake session's outbound queue got. Every step ends with a
//! `Ping` probe: the mailbox is one FIFO, so once it is answered everything
//! sent before has been handled and the queues hold all they will.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use futures_util::FutureExt;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::oneshot;

use super::*;
use crate::config::{RoomDecl, RoomSettings};
use crate::engine::{
    Committed, CommittedEvent, ControlOp, Gathered, PublishAck, PublishJob, RoomState,
};
use crate::event::Event;
use crate::event::KeyChange;
use crate::outbound::Next;
use crate::protocol::EventFrameParts;

/// How the fake engine answers, and what it was asked; shared with the test.
#[derive(Default)]
struct Script {
    /// Rooms whose `open` is answered later, by the test.
    deferred: HashSet<String>,
    /// Rooms' state as `open` returns it at once (otherwise empty, epoch `e1`).
    states: HashMap<String, RoomState>,
    /// Every `open`, in order.
    opened: Vec<String>,
    /// Every `catch_up`, in order.
    caught_up: Vec<String>,
    /// Publish jobs handed over, waiting for the test to commit them.
    jobs: VecDeque<PublishJob>,
}

/// An engine whose every outcome is the test's to give.
struct FakeEngine(Arc<Mutex<Script>>);

impl Engine for FakeEngine {
    fn is_cluster(&self) -> bool {
        false
    }

    fn restored(&mut self) -> Vec<(Arc<str>, RoomState)> {
        Vec::new()
    }

    fn open(
        &mut self,
        room: &Arc<str>,
        _: &RoomSettings,
        _: bool,
    ) -> Result<Option<RoomState>, HubError> {
        let mut script = self.0.lock();
        script.opened.push(room.to_string());
        if script.deferred.contains(&**room) {
            return Ok(None);
        }
        Ok(Some(
            script
                .states
                .get(&**room)
                .cloned()
                .unwrap_or_else(|| state("e1", 0, Vec::new())),
        ))
    }

    fn catch_up(&mut self, room: &Arc<str>) -> Result<bool, HubError> {
        self.0.lock().caught_up.push(room.to_string());
        Ok(true)
    }

    fn close(&mut self, _: &Arc<str>, _: bool) {}

    fn publish(&mut self, job: PublishJob) -> Option<Committed> {
        self.0.lock().jobs.push_back(job);
        None
    }

    fn ask_all(&mut self, _: ControlOp, reply: Gathered) -> Result<(), Gathered> {
        Err(reply)
    }
}

/// A registry over a [`FakeEngine`], started in the current actix system.
struct Hub {
    handle: RegistryHandle,
    script: Arc<Mutex<Script>>,
}

impl Hub {
    /// Rooms `news` (client publish allowed) and `keys` (keyed) are declared,
    /// so they are opened when the registry starts, as `script` says.
    fn start(script: Script) -> Hub {
        let mut config = Config::default();
        config.rooms.declare = vec![
            RoomDecl {
                client_publish: Some(true),
                ..RoomDecl::named("news")
            },
            RoomDecl {
                keyed: Some(true),
                ..RoomDecl::named("keys")
            },
        ];
        let script = Arc::new(Mutex::new(script));
        let engine = Box::new(FakeEngine(script.clone()));
        let draining = Arc::new(AtomicBool::new(false));
        let (actor, _) = RegistryActor::new(Arc::new(config), "n".into(), draining, engine);
        let handle = RegistryHandle::new(actor.start(), 1000, Duration::from_secs(3600));
        Hub { handle, script }
    }

    /// Waits (bounded) until the registry has handled everything sent so far.
    async fn settle(&self) {
        tokio::time::timeout(Duration::from_secs(5), self.handle.probe(Ping))
            .await
            .expect("the registry answers within 5 s")
            .expect("the registry is running");
    }

    /// Registers session `id` and returns the queue its frames go to.
    async fn session(&self, id: u64) -> OutboundQueue {
        let queue = OutboundQueue::new(64, usize::MAX);
        self.handle.do_send(Register {
            id: SessionId(id),
            kind: Arc::from("connect"),
            user: None,
            remote: Arc::from("127.0.0.1:4000"),
            queue: queue.clone(),
            stats: Arc::new(crate::session_stats::SessionStats::new()),
        });
        self.settle().await;
        queue
    }

    /// Asks for `room`'s history after `since`; answered now or later.
    async fn history(&self, room: &str, since: u64) -> Answer<HistoryPage> {
        let read = GetHistory {
            room: room.into(),
            read: Read::After { since, limit: 10 },
        };
        tokio::time::timeout(Duration::from_secs(5), self.handle.probe(read))
            .await
            .expect("the registry answers within 5 s")
            .expect("the registry is running")
    }

    /// The oldest publish job the engine holds.
    fn job(&self) -> PublishJob {
        self.script
            .lock()
            .jobs
            .pop_front()
            .expect("a publish job with the engine")
    }
}

fn data() -> Box<RawValue> {
    RawValue::from_string("{\"n\":1}".into()).expect("json")
}

/// An event of `room` as an engine would hold it.
fn event(room: &str, seq: u64) -> Event {
    Event::plain(
        seq,
        EventFrameParts::new("tick", room, "ts", &data()).with_seq(seq),
    )
}

/// A keyed event setting `key`.
fn keyed(room: &str, seq: u64, key: &str) -> Event {
    let k = Some((key, false));
    Event {
        seq,
        frame: EventFrameParts::keyed("tick", room, "ts", k, &data()).with_seq(seq),
        key: Some(KeyChange {
            key: Arc::from(key),
            delete: false,
        }),
    }
}

fn state(epoch: &str, seq: u64, events: Vec<Event>) -> RoomState {
    RoomState {
        epoch: Arc::from(epoch),
        seq,
        events,
        state: Vec::new(),
    }
}

/// An HTTP publish of a `tick` into `room`, and where its answer arrives.
fn publish(room: &str) -> (Publish, oneshot::Receiver<Result<PublishAck, HubError>>) {
    Publish::http(room.into(), "tick".into(), data(), None)
}

fn subscribe(id: u64, room: &str, since: Option<u64>, epoch: Option<&str>) -> Subscribe {
    Subscribe {
        id: SessionId(id),
        room: room.into(),
        since,
        epoch: epoch.map(String::from),
        reference: None,
    }
}

/// The engine's outcome for `job`: its items get `seqs`, in order, in `epoch`;
/// each ack is what the engine says.
fn commit(job: PublishJob, epoch: &str, seqs: &[u64]) -> Committed {
    let received = job.received();
    let mut events = Vec::new();
    let results = job
        .items
        .iter()
        .zip(seqs)
        .map(|(item, &seq)| {
            events.push(CommittedEvent {
                room: item.room.clone(),
                epoch: Arc::from(epoch),
                event: Event {
                    seq,
                    frame: item.parts.with_seq(seq),
                    key: item.state.as_ref().map(|w| w.change.clone()),
                },
            });
            Ok(ack(&item.room, epoch, seq, item.delivered))
        })
        .collect();
    Committed {
        events,
        results,
        answer: job.answer,
        received,
    }
}

fn ack(room: &str, epoch: &str, seq: u64, delivered: usize) -> PublishAck {
    PublishAck {
        room: room.into(),
        epoch: epoch.into(),
        seq,
        delivered,
        duplicate: false,
    }
}

/// What `queue` holds now, in order: each item as its frames (a `subscribed`
/// and its replay are one item). Never waits.
fn take(queue: &OutboundQueue) -> Vec<Vec<Value>> {
    let Some(next) = queue.next(VecDeque::new()).now_or_never() else {
        return Vec::new();
    };
    let Next::Items(items) = next else {
        panic!("the session's queue was closed");
    };
    items
        .into_iter()
        .map(|item| {
            queue.written(&item);
            match item {
                Outbound::Frame(f) => vec![json(&f)],
                Outbound::Batch(frames) => frames.iter().map(json).collect(),
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

fn json(frame: &bytestring::ByteString) -> Value {
    serde_json::from_str(frame).expect("json frame")
}

/// The seqs of the event frames among `frames`.
fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "tick")
        .map(|f| f["seq"].as_u64().expect("seq"))
        .collect()
}

/// Each live event frame in `items` (one frame per item), by seq.
fn live(items: &[Vec<Value>]) -> Vec<u64> {
    items
        .iter()
        .map(|item| {
            assert_eq!(item.len(), 1, "a live event is one frame: {item:?}");
            assert_eq!(item[0]["type"], "tick", "{item:?}");
            item[0]["seq"].as_u64().expect("seq")
        })
        .collect()
}

/// A `subscribed` item: its (epoch, seq, recovered) and the replayed seqs.
fn joined(items: &[Vec<Value>]) -> ((String, u64, bool), Vec<u64>) {
    assert_eq!(items.len(), 1, "one `subscribed` item: {items:?}");
    let head = &items[0][0];
    assert_eq!(head["type"], "subscribed", "{head}");
    let epoch = head["epoch"].as_str().expect("epoch").to_string();
    let seq = head["seq"].as_u64().expect("seq");
    let recovered = head["recovered"].as_bool().expect("recovered");
    ((epoch, seq, recovered), seqs(&items[0][1..]))
}

fn run(test: impl std::future::Future<Output = ()>) {
    actix_rt::System::new().block_on(test);
}

#[test]
fn a_subscribe_while_a_publish_is_with_the_engine_gets_the_event_once() {
    run(async {
        let hub = Hub::start(Script::default());
        let (a, b, c) = (
            hub.session(1).await,
            hub.session(2).await,
            hub.session(3).await,
        );
        hub.handle.do_send(subscribe(1, "news", None, None));
        let (p, mut answer) = publish("news");
        hub.handle.do_send(p);
        // b subscribes (a fresh join and a resume from 0) while the event
        // has no seq yet.
        hub.handle
            .do_send(subscribe(2, "news", Some(0), Some("e1")));
        hub.settle().await;
        assert_eq!(joined(&take(&a)), (("e1".into(), 0, false), vec![]));
        assert_eq!(joined(&take(&b)), (("e1".into(), 0, true), vec![]));
        assert!(answer.try_recv().is_err(), "not answered before Committed");

        hub.handle.do_send(commit(hub.job(), "e1", &[1]));
        hub.settle().await;
        assert_eq!(live(&take(&a)), [1]);
        assert_eq!(live(&take(&b)), [1], "b gets it live, once");
        // Only a was subscribed when the publish was accepted.
        assert_eq!(
            answer.try_recv().expect("answered"),
            Ok(ack("news", "e1", 1, 1))
        );

        // After the commit, a resume gets it from history and never live too.
        hub.handle
            .do_send(subscribe(3, "news", Some(0), Some("e1")));
        hub.settle().await;
        assert_eq!(joined(&take(&c)), (("e1".into(), 1, true), vec![1]));
        let (p, _answer) = publish("news");
        hub.handle.do_send(p);
        hub.settle().await;
        hub.handle.do_send(commit(hub.job(), "e1", &[2]));
        hub.settle().await;
        for q in [&a, &b, &c] {
            assert_eq!(live(&take(q)), [2]);
        }
    });
}

#[test]
fn committed_events_are_delivered_in_seq_order_and_only_once_committed() {
    run(async {
        let hub = Hub::start(Script::default());
        let a = hub.session(1).await;
        hub.handle.do_send(subscribe(1, "news", None, None));
        let mut answers = Vec::new();
        for _ in 0..4 {
            let (p, rx) = publish("news");
            hub.handle.do_send(p);
            answers.push(rx);
        }
        hub.settle().await;
        take(&a);
        let mut jobs: Vec<PublishJob> = (0..4).map(|_| hub.job()).collect();
        assert!(take(&a).is_empty(), "nothing delivered before Committed");
        assert!(answers.iter_mut().all(|rx| rx.try_recv().is_err()));

        // The engine fails the second; its publisher gets the error, and
        // nobody an event.
        let failed = jobs.remove(1);
        let err = HubError::Unavailable("disk full".into());
        hub.handle.do_send(Committed::failed(failed, &err));
        hub.settle().await;
        assert!(
            take(&a).is_empty(),
            "nothing delivered for a failed publish"
        );
        assert_eq!(answers[1].try_recv().expect("answered"), Err(err));

        // The others commit as 1, 2, 3 in the engine's order.
        let last = jobs.pop().expect("job");
        let second = jobs.pop().expect("job");
        hub.handle.do_send(commit(jobs.remove(0), "e1", &[1]));
        hub.handle.do_send(commit(second, "e1", &[2]));
        hub.handle.do_send(commit(last, "e1", &[3]));
        hub.settle().await;
        assert_eq!(live(&take(&a)), [1, 2, 3]);
        for (rx, seq) in [(0, 1), (2, 2), (3, 3)] {
            let got = answers[rx].try_recv().expect("answered");
            assert_eq!(got, Ok(ack("news", "e1", seq, 1)), "publish {rx}");
        }

        // An event the engine hands over again, or past a gap, is not
        // delivered: the subscriber never sees a seq twice or out of order.
        // A gap is a bug somewhere: the room is read again (here: head 3) and
        // its subscribers start over from it, rather than miss seq 4 unseen.
        let (p, _r) = publish("news");
        hub.handle.do_send(p);
        hub.settle().await;
        hub.handle.do_send(commit(hub.job(), "e1", &[3]));
        hub.settle().await;
        assert!(take(&a).is_empty(), "a repeated seq is dropped");
        let (p, _r) = publish("news");
        hub.handle.do_send(p);
        hub.settle().await;
        let read = (1..=3).map(|seq| event("news", seq)).collect();
        hub.script
            .lock()
            .states
            .insert("news".into(), state("e1", 3, read));
        hub.handle.do_send(commit(hub.job(), "e1", &[5]));
        hub.settle().await;
        // One item, the `subscribed` with the room as read: no seq 5.
        let ((epoch, seq, recovered), replay) = joined(&take(&a));
        assert_eq!((epoch.as_str(), seq, recovered), ("e1", 3, false));
        assert_eq!(replay, [1, 2, 3]);

        // A batch: an item refused before the engine keeps its slot.
        let (tx, mut batch) = oneshot::channel();
        let items = ["news", "nope", "news"].map(|room| publish(room).0).into();
        hub.handle.do_send(PublishBatch { items, reply: tx });
        hub.settle().await;
        let job = hub.job();
        assert_eq!(
            job.items.len(),
            2,
            "the unknown room never reaches the engine"
        );
        hub.handle.do_send(commit(job, "e1", &[4, 5]));
        hub.settle().await;
        assert_eq!(live(&take(&a)), [4, 5]);
        let got = batch.try_recv().expect("answered");
        assert_eq!(got[0], Ok(ack("news", "e1", 4, 1)));
        assert!(matches!(&got[1], Err(HubError::UnknownRoom(r)) if r == "nope"));
        assert_eq!(got[2], Ok(ack("news", "e1", 5, 1)));
    });
}

#[test]
fn a_resume_recovers_exactly_the_missing_events_in_its_epoch_only() {
    run(async {
        let mut script = Script::default();
        // History holds 2..=4 (1 is gone).
        let history = (2..=4).map(|s| event("news", s)).collect();
        script.states.insert("news".into(), state("e1", 4, history));
        let hub = Hub::start(script);
        let mut queues = Vec::new();
        for (id, since, epoch) in [
            (1, Some(2), Some("e1")),
            (2, Some(4), Some("e1")),
            (3, Some(1), Some("e1")),
            (4, Some(2), Some("e0")),
            (5, None, None),
        ] {
            let q = hub.session(id).await;
            hub.handle.do_send(subscribe(id, "news", since, epoch));
            queues.push(q);
        }
        hub.settle().await;
        let got: Vec<_> = queues.iter().map(|q| joined(&take(q))).collect();
        let e1 = String::from("e1");
        assert_eq!(got[0], ((e1.clone(), 4, true), vec![3, 4]), "since 2");
        assert_eq!(got[1], ((e1.clone(), 4, true), vec![]), "since the head");
        // Since 1 needs 2.. which history has: still exact.
        assert_eq!(got[2], ((e1.clone(), 4, true), vec![2, 3, 4]), "since 1");
        assert_eq!(
            got[3],
            ((e1.clone(), 4, false), vec![2, 3, 4]),
            "other epoch"
        );
        assert_eq!(got[4], ((e1.clone(), 4, false), vec![2, 3, 4]), "fresh");

        // Since 0 needs event 1, which history no longer has.
        let q = hub.session(6).await;
        hub.handle
            .do_send(subscribe(6, "news", Some(0), Some("e1")));
        hub.settle().await;
        assert_eq!(joined(&take(&q)), ((e1, 4, false), vec![2, 3, 4]));
    });
}

#[test]
fn a_resume_past_the_mirror_waits_for_the_engine_to_catch_up() {
    run(async {
        let mut script = Script::default();
        let history = (1..=3).map(|s| event("news", s)).collect();
        script.states.insert("news".into(), state("e1", 3, history));
        let hub = Hub::start(script);
        let (a, b) = (hub.session(1).await, hub.session(2).await);
        hub.handle
            .do_send(subscribe(1, "news", Some(3), Some("e1")));
        // b saw seq 5 on another node; this mirror is at 3.
        hub.handle
            .do_send(subscribe(2, "news", Some(5), Some("e1")));
        hub.settle().await;
        take(&a);
        assert!(take(&b).is_empty(), "b waits instead of recovered:false");
        assert_eq!(hub.script.lock().caught_up, ["news"]);

        let events = vec![event("news", 4), event("news", 5)];
        hub.handle.do_send(RoomEvents {
            room: Arc::from("news"),
            epoch: "e1".into(),
            events,
        });
        hub.settle().await;
        assert_eq!(live(&take(&a)), [4, 5]);
        assert!(take(&b).is_empty(), "still waiting for RoomCaughtUp");

        hub.handle.do_send(RoomCaughtUp {
            room: Arc::from("news"),
        });
        hub.settle().await;
        assert_eq!(joined(&take(&b)), (("e1".into(), 5, true), vec![]));
    });
}

#[test]
fn subscribers_of_a_room_being_opened_wait_for_room_synced() {
    run(async {
        let mut script = Script::default();
        script.deferred.insert("news".into());
        let hub = Hub::start(script);
        let (a, b) = (hub.session(1).await, hub.session(2).await);
        hub.handle.do_send(subscribe(1, "news", None, None));
        hub.handle
            .do_send(subscribe(2, "news", Some(1), Some("e9")));
        let Answer::Later(mut page) = hub.history("news", 1).await else {
            panic!("a history read waits for the room too");
        };
        hub.settle().await;
        assert!(take(&a).is_empty() && take(&b).is_empty());
        assert!(page.try_recv().is_err());
        assert_eq!(hub.script.lock().opened, ["news", "keys"], "opened once");

        hub.handle.do_send(RoomSynced {
            room: Arc::from("news"),
            epoch: "e9".into(),
            seq: 2,
            events: vec![event("news", 1), event("news", 2)],
            state: Vec::new(),
            reset: false,
        });
        hub.settle().await;
        assert_eq!(joined(&take(&a)), (("e9".into(), 2, false), vec![1, 2]));
        assert_eq!(joined(&take(&b)), (("e9".into(), 2, true), vec![2]));
        let page = page.try_recv().expect("answered").expect("a page");
        assert_eq!((page.epoch.as_str(), page.seq), ("e9", 2));
        assert_eq!(seqs(&page.events.iter().map(json).collect::<Vec<_>>()), [2]);
        // And they are in the room.
        let (p, _r) = publish("news");
        hub.handle.do_send(p);
        hub.settle().await;
        hub.handle.do_send(commit(hub.job(), "e9", &[3]));
        hub.settle().await;
        assert_eq!((live(&take(&a)), live(&take(&b))), (vec![3], vec![3]));
    });
}

#[test]
fn subscribers_of_a_room_that_cannot_be_read_get_unavailable() {
    run(async {
        let mut script = Script::default();
        script.deferred.insert("news".into());
        let hub = Hub::start(script);
        let a = hub.session(1).await;
        hub.handle.do_send(subscribe(1, "news", None, None));
        let Answer::Later(mut page) = hub.history("news", 0).await else {
            panic!("a history read waits for the room too");
        };
        hub.settle().await;
        assert!(take(&a).is_empty());

        hub.handle.do_send(SyncFailed {
            room: Arc::from("news"),
            error: "disk".into(),
        });
        hub.settle().await;
        let items = take(&a);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0][0]["type"], "error");
        assert_eq!(items[0][0]["code"], "unavailable");
        let got = page.try_recv().expect("answered");
        assert!(matches!(got, Err(HubError::Unavailable(_))), "{got:?}");

        // Nothing is left waiting: the next subscribe asks the engine again.
        hub.script.lock().deferred.clear();
        hub.handle.do_send(subscribe(1, "news", None, None));
        hub.settle().await;
        assert_eq!(joined(&take(&a)), (("e1".into(), 0, false), vec![]));
        let opened = hub.script.lock().opened.clone();
        assert_eq!(opened, ["news", "keys", "news"]);
    });
}

#[test]
fn an_engine_resync_applies_what_follows_and_a_reset_starts_subscribers_over() {
    run(async {
        let mut script = Script::default();
        let history = (1..=2).map(|s| event("news", s)).collect();
        script.states.insert("news".into(), state("e1", 2, history));
        let hub = Hub::start(script);
        let a = hub.session(1).await;
        hub.handle
            .do_send(subscribe(1, "news", Some(2), Some("e1")));
        hub.settle().await;
        take(&a);

        // A resync in the same epoch that follows the head: live events only.
        let synced = |epoch: &str, seq, events, reset| RoomSynced {
            room: Arc::from("news"),
            epoch: epoch.into(),
            seq,
            events,
            state: Vec::new(),
            reset,
        };
        hub.handle
            .do_send(synced("e1", 3, vec![event("news", 3)], false));
        hub.settle().await;
        assert_eq!(live(&take(&a)), [3]);

        // Same epoch but past a gap (4 and 5 missed): the subscriber starts over.
        hub.handle
            .do_send(synced("e1", 6, vec![event("news", 6)], false));
        hub.settle().await;
        assert_eq!(joined(&take(&a)), (("e1".into(), 6, false), vec![6]));

        // The engine lost the room: a new epoch, everyone starts over.
        let events = vec![event("news", 1), event("news", 2)];
        hub.handle.do_send(synced("e2", 2, events, true));
        hub.settle().await;
        assert_eq!(joined(&take(&a)), (("e2".into(), 2, false), vec![1, 2]));
        // A resume in the old epoch is not recovered.
        let b = hub.session(2).await;
        hub.handle
            .do_send(subscribe(2, "news", Some(3), Some("e1")));
        hub.settle().await;
        assert_eq!(joined(&take(&b)), (("e2".into(), 2, false), vec![1, 2]));
    });
}

#[test]
fn a_fresh_subscribe_to_a_keyed_room_gets_its_state() {
    run(async {
        let mut script = Script::default();
        let history = vec![
            keyed("keys", 1, "a"),
            keyed("keys", 2, "b"),
            keyed("keys", 3, "a"),
        ];
        let mut room = state("e1", 3, history);
        room.state = vec![keyed("keys", 2, "b"), keyed("keys", 3, "a")];
        script.states.insert("keys".into(), room);
        let hub = Hub::start(script);
        let (a, b, c) = (
            hub.session(1).await,
            hub.session(2).await,
            hub.session(3).await,
        );
        hub.handle.do_send(subscribe(1, "keys", None, None));
        hub.settle().await;
        let items = take(&a);
        assert_eq!(items[0][0]["state"], 2, "{items:?}");
        assert_eq!(joined(&items), (("e1".into(), 3, false), vec![2, 3]));

        // A committed keyed publish changes the state the next one gets.
        let (p, _r) = publish("keys");
        hub.handle.do_send(p.with_key(Some("b".into()), false));
        hub.settle().await;
        let job = hub.job();
        let write = job.items[0].state.as_ref().expect("a keyed write");
        assert_eq!(&*write.change.key, "b");
        hub.handle.do_send(commit(job, "e1", &[4]));
        hub.settle().await;
        assert_eq!(live(&take(&a)), [4]);
        hub.handle.do_send(subscribe(2, "keys", None, None));
        hub.settle().await;
        assert_eq!(joined(&take(&b)), (("e1".into(), 4, false), vec![3, 4]));

        // An exact resume gets the events, not the state.
        hub.handle
            .do_send(subscribe(3, "keys", Some(3), Some("e1")));
        hub.settle().await;
        let items = take(&c);
        assert!(items[0][0].get("state").is_none(), "{items:?}");
        assert_eq!(joined(&items), (("e1".into(), 4, true), vec![4]));
    });
}

#[test]
fn a_socket_publisher_gets_published_only_after_its_event() {
    run(async {
        let hub = Hub::start(Script::default());
        let a = hub.session(1).await;
        hub.handle.do_send(subscribe(1, "news", None, None));
        let (mut p, _) = publish("news");
        p.reply = None;
        p.origin = Some(PublishOrigin {
            id: SessionId(1),
            reference: None,
        });
        hub.handle.do_send(p);
        hub.settle().await;
        take(&a);

        // The engine answers without the event (it delivers through its
        // own channel, as Redis does): `published` waits for it.
        let mut done = commit(hub.job(), "e1", &[1]);
        done.events.clear();
        hub.handle.do_send(done);
        hub.settle().await;
        assert!(take(&a).is_empty(), "published before the event");

        hub.handle.do_send(RoomEvents {
            room: Arc::from("news"),
            epoch: "e1".into(),
            events: vec![event("news", 1)],
        });
        hub.settle().await;
        let items = take(&a);
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(live(&items[..1]), [1]);
        assert_eq!(items[1][0]["type"], "published");
        assert_eq!(items[1][0]["seq"], 1);
    });
}
