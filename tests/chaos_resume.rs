//! Zero loss across reconnects: clients dropped at random (abrupt TCP close, no
//! close frame) resume with `since` + `epoch` and end holding every event exactly
//! once, in order; with history smaller than the gap they are told
//! `recovered: false`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

/// A small deterministic PRNG (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Drops the connection without a close frame: RST (linger 0) or plain FIN.
fn drop_abruptly(c: Client, rst: bool) {
    if let MaybeTlsStream::Plain(tcp) = c.ws.get_ref() {
        if rst {
            // Linger 0 makes the close an RST; blocking on drop is what we want.
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
        }
    }
    drop(c);
}

/// What one chaos client saw.
struct Outcome {
    /// Every event seq received, in arrival order.
    seqs: Vec<u64>,
    /// Connections made.
    connects: u32,
    /// `recovered: false` answers to a resume.
    not_recovered: u32,
}

/// Follows `room` until seq `head`, dropping the connection after a random
/// number of events and resuming; `pause` keeps it away for that many
/// publishes' worth of time before reconnecting.
async fn chaos_client(
    hub: Arc<realtime_hub::SpawnedHub>,
    seed: u64,
    head: u64,
    pause: Duration,
) -> Outcome {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Outcome {
        seqs: Vec::new(),
        connects: 0,
        not_recovered: 0,
    };
    let mut position: Option<(String, u64)> = None; // (epoch, last seq)
    loop {
        let mut c = match (&position, rng.next() % 2) {
            (Some((epoch, since)), 0) => {
                Client::connect_welcomed(
                    &hub.ws(&format!("/ws/hotspots?since={since}&epoch={epoch}")),
                )
                .await
                .0
            }
            (Some((epoch, since)), _) => {
                let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
                c.send(
                    json!({"op": "subscribe", "room": "hotspots", "since": since, "epoch": epoch}),
                )
                .await;
                c
            }
            (None, _) => Client::connect_welcomed(&hub.ws("/ws/hotspots")).await.0,
        };
        out.connects += 1;
        let sub = c.recv().await;
        assert_eq!(sub["type"], "subscribed", "{sub}");
        let epoch = sub["epoch"].as_str().expect("epoch").to_string();
        if let (Some((_, since)), false) = (&position, sub["recovered"] == true) {
            // Not recovered: resync from the HTTP history, as the contract asks —
            // what it still holds up to the subscribe point; live events follow.
            out.not_recovered += 1;
            let at = sub["seq"].as_u64().expect("seq");
            let (_, page) =
                get(&hub.http(&format!("/api/rooms/hotspots/history?since={since}"))).await;
            for e in page["events"].as_array().expect("events") {
                let seq = e["seq"].as_u64().expect("seq");
                if seq <= at {
                    out.seqs.push(seq);
                }
            }
            // (the position moves on with the next live event)
            if at >= head {
                return out;
            }
        }
        let budget = rng.range(20, 400);
        let mut taken = 0;
        loop {
            let v = c.recv().await;
            let seq = v["seq"].as_u64().expect("event seq");
            out.seqs.push(seq);
            position = Some((epoch.clone(), seq));
            if seq >= head {
                return out;
            }
            taken += 1;
            if taken >= budget {
                break;
            }
        }
        drop_abruptly(c, rng.next().is_multiple_of(2));
        tokio::time::sleep(pause).await;
    }
}

async fn run_chaos(history: usize, events: u64, clients: u64, pause: Duration) -> Vec<Outcome> {
    let hub = Arc::new(start(|c| {
        c.rooms.history = history;
        c.rooms.snapshot = 0;
        c.server.workers = 2;
    }));
    let mut tasks = Vec::new();
    for i in 0..clients {
        tasks.push(tokio::spawn(chaos_client(
            hub.clone(),
            i + 1,
            events,
            pause,
        )));
    }
    wait_status(&hub, |s| s["rooms"]["hotspots"].as_u64() >= Some(clients)).await;
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let client = http();
            for i in 0..events {
                let r = client
                    .post(hub.http("/api/rooms/hotspots/events"))
                    .header("content-type", "application/json")
                    .body(json!({"type": "hotspot_detected", "data": {"i": i}}).to_string())
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(r.status().as_u16(), 200);
            }
        })
    };
    publisher.await.expect("publisher");
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("client finishes")
                .expect("client task"),
        );
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomly_dropped_clients_resume_and_hold_every_event_once_in_order() {
    const EVENTS: u64 = 5000;
    let outcomes = run_chaos(EVENTS as usize, EVENTS, 20, Duration::ZERO).await;
    let expected: Vec<u64> = (1..=EVENTS).collect();
    for (i, o) in outcomes.iter().enumerate() {
        assert!(
            o.connects >= 3,
            "client {i} was dropped only {} times",
            o.connects - 1
        );
        assert_eq!(
            o.not_recovered, 0,
            "client {i}: every resume within history is exact"
        );
        assert_eq!(o.seqs.len(), expected.len(), "client {i}: count");
        assert!(
            o.seqs == expected,
            "client {i}: not 1..={EVENTS} exactly once in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_larger_than_history_are_reported_as_not_recovered() {
    // History of 10 while clients stay away long enough for more to pass.
    let outcomes = run_chaos(10, 1500, 4, Duration::from_millis(150)).await;
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.not_recovered > 0, "client {i} never got recovered:false");
        assert!(
            o.seqs.windows(2).all(|w| w[0] < w[1]),
            "client {i}: still in order with no duplicates"
        );
        assert_eq!(o.seqs.last(), Some(&1500));
    }
}
