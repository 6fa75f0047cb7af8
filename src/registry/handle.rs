//! The one way to talk to the registry: a typed handle that also knows how many
//! messages wait in the registry's mailbox (actix does not expose it) and how
//! long the last one waited.
//!
//! Every message travels wrapped in [`Enqueued`], which carries a guard that
//! counts it while it exists: created on send, dropped when the registry has
//! handled it — or when it was never delivered (a cancelled request, a closed
//! mailbox) — so the count cannot drift.
//!
//! The intake is bounded two ways, so a flood is answered `unavailable` / 503
//! at once instead of queueing and delaying every other room:
//! - **by delay**: socket commands ([`offer`](RegistryHandle::offer)) are
//!   refused while messages wait and the last one handled had waited more than
//!   `server.registry_max_lag_ms`. The mailbox is one FIFO, so its delay is
//!   what every publish pays; shedding on it keeps that delay near the target
//!   whatever a message costs on this machine (a count alone would allow
//!   seconds of backlog on a slow one).
//! - **by depth**: every client-driven message (socket commands and HTTP
//!   requests, [`send`](RegistryHandle::send)) is refused at
//!   `server.registry_mailbox` waiting messages.
//!
//! What must never be lost (register, unregister, cluster hand-overs, drain,
//! the health probe) takes [`do_send`](RegistryHandle::do_send) or
//! [`probe`](RegistryHandle::probe), bounded by its sources instead (sockets
//! held, Redis lanes).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::{Addr, Context, Handler, MailboxError, Message, MessageResult};

use super::RegistryActor;
use crate::engine::{CommitSink, Committed};

/// What the registry does with one message type; implemented once per message.
pub trait Handles<M: Message> {
    /// Handles `msg`.
    fn on(&mut self, msg: M, ctx: &mut Context<RegistryActor>) -> M::Result;
}

/// The intake's state, shared by every handle and guard.
#[derive(Debug, Default)]
struct Intake {
    /// Messages sent and not yet handled.
    depth: AtomicUsize,
    /// How long the last handled message waited, in µs.
    lag_us: AtomicU64,
}

/// Counts one message while it is in flight, and when it was sent.
struct DepthGuard {
    intake: Arc<Intake>,
    sent: Instant,
}

impl DepthGuard {
    fn new(intake: &Arc<Intake>) -> Self {
        intake.depth.fetch_add(1, Ordering::Relaxed);
        DepthGuard {
            intake: intake.clone(),
            sent: Instant::now(),
        }
    }

    /// The registry takes the message now: its wait is the intake's delay.
    fn handled(self) {
        let waited = self.sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.intake.lag_us.store(waited, Ordering::Relaxed);
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.intake.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registry message on its way, counted until handled or dropped.
pub struct Enqueued<M> {
    msg: M,
    guard: DepthGuard,
}

impl<M: Message> Message for Enqueued<M>
where
    M::Result: Send,
{
    type Result = M::Result;
}

impl<M> Handler<Enqueued<M>> for RegistryActor
where
    M: Message + Send + 'static,
    M::Result: Send,
    RegistryActor: Handles<M>,
{
    type Result = MessageResult<Enqueued<M>>;

    fn handle(
        &mut self,
        Enqueued { msg, guard }: Enqueued<M>,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        guard.handled();
        MessageResult(self.on(msg, ctx))
    }
}

/// The registry's intake is full: the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl From<Busy> for crate::error::HubError {
    fn from(_: Busy) -> Self {
        crate::error::HubError::Unavailable(
            "the hub is busy (registry intake full); retry shortly".into(),
        )
    }
}

/// A cheap, cloneable handle on the registry for sessions and HTTP handlers.
#[derive(Clone)]
pub struct RegistryHandle {
    /// The actor.
    addr: Addr<RegistryActor>,
    /// Depth and delay of its mailbox.
    intake: Arc<Intake>,
    /// Depth at which client-driven messages are refused.
    capacity: usize,
    /// Delay above which socket commands are refused.
    max_lag: Duration,
}

impl RegistryHandle {
    /// A handle on a started registry whose client intake holds `capacity`
    /// messages and sheds socket commands above `max_lag` of delay.
    pub fn new(addr: Addr<RegistryActor>, capacity: usize, max_lag: Duration) -> Self {
        RegistryHandle {
            addr,
            intake: Arc::new(Intake::default()),
            capacity: capacity.max(1),
            max_lag,
        }
    }

    /// Whether client-driven messages would be refused now.
    pub fn is_full(&self) -> bool {
        self.depth() >= self.capacity
    }

    /// Whether the registry is behind: messages wait, and the last one it took
    /// had waited longer than the target.
    pub fn is_lagging(&self) -> bool {
        self.depth() > 0 && self.lag() > self.max_lag
    }

    /// Sends a socket command without waiting, unless the intake is full or
    /// lagging.
    pub fn offer<M>(&self, msg: M) -> Result<(), Busy>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.admit(self.is_lagging())?;
        self.do_send(msg);
        Ok(())
    }

    /// Refuses (and counts) a client-driven message when the intake is full,
    /// or when `lagging` for the commands shed by delay.
    fn admit(&self, lagging: bool) -> Result<(), Busy> {
        if lagging || self.is_full() {
            crate::metrics::registry_refused();
            return Err(Busy);
        }
        Ok(())
    }

    /// Sends an HTTP publish (answered on its own channel) without waiting,
    /// unless the intake is full.
    pub fn offer_request<M>(&self, msg: M) -> Result<(), Busy>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.admit(false)?;
        self.do_send(msg);
        Ok(())
    }

    /// Sends a message that must not be lost, whatever the depth.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.addr.do_send(Enqueued {
            msg,
            guard: DepthGuard::new(&self.intake),
        });
    }

    /// Sends an HTTP request and awaits the answer; refused at once
    /// (`MailboxError::Timeout`, answered 503 "busy") when the intake is full.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.admit(false).map_err(|_| MailboxError::Timeout)?;
        self.probe(msg).await
    }

    /// Sends and awaits the answer whatever the depth: the health probe, which
    /// must measure the registry rather than be refused by its bound, and the
    /// hub's own tasks.
    pub async fn probe<M>(&self, msg: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.addr
            .send(Enqueued {
                msg,
                guard: DepthGuard::new(&self.intake),
            })
            .await
    }

    /// Messages waiting in the registry's mailbox.
    pub fn depth(&self) -> usize {
        self.intake.depth.load(Ordering::Relaxed)
    }

    /// How long the last message the registry took had waited.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.intake.lag_us.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use actix::Actor;

    #[test]
    fn a_full_intake_refuses_client_messages_but_not_must_deliver_ones() {
        actix_rt::System::new().block_on(async {
            let config = Arc::new(Config::default());
            let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let engine = Box::new(crate::engine::memory::MemoryEngine::new(&config));
            let (actor, _) = RegistryActor::new(config, "n".into(), draining, engine);
            // Started here, but it handles nothing until this task yields.
            let handle = RegistryHandle::new(actor.start(), 2, Duration::from_secs(3600));
            assert_eq!(handle.offer(super::super::Ping), Ok(()));
            assert_eq!(handle.offer(super::super::Ping), Ok(()));
            assert_eq!(handle.offer(super::super::Ping), Err(Busy));
            assert!(handle.is_full());
            handle.do_send(super::super::Ping);
            assert_eq!(handle.depth(), 3);
            assert!(matches!(
                handle.send(super::super::Ping).await,
                Err(MailboxError::Timeout)
            ));
            // The probe still gets through, and once handled the intake opens.
            assert_eq!(handle.probe(super::super::Ping).await, Ok(()));
            assert_eq!(handle.depth(), 0);
            assert_eq!(handle.offer(super::super::Ping), Ok(()));
        });
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;
    use actix::Actor;

    #[test]
    fn socket_commands_are_shed_only_while_the_registry_is_behind() {
        actix_rt::System::new().block_on(async {
            let config = Arc::new(crate::config::Config::default());
            let engine = Box::new(crate::engine::memory::MemoryEngine::new(&config));
            let (actor, _) = RegistryActor::new(
                config,
                "n".into(),
                Arc::new(std::sync::atomic::AtomicBool::new(false)),
                engine,
            );
            let handle = RegistryHandle::new(actor.start(), 1000, Duration::from_millis(5));
            handle.intake.lag_us.store(50_000, Ordering::Relaxed);
            // Behind, but nothing waits: the lag is old news, commands pass.
            assert!(!handle.is_lagging());
            assert_eq!(handle.offer(super::super::Ping), Ok(()));
            // Something waits and the last wait was long: shed.
            assert!(handle.is_lagging());
            assert_eq!(handle.offer(super::super::Ping), Err(Busy));
            // HTTP publishes are bounded by depth only.
            assert_eq!(handle.offer_request(super::super::Ping), Ok(()));
            // Once the registry takes messages promptly again, commands pass.
            assert_eq!(handle.probe(super::super::Ping).await, Ok(()));
            assert!(handle.lag() < Duration::from_millis(5));
            assert_eq!(handle.offer(super::super::Ping), Ok(()));
        });
    }
}

impl CommitSink for RegistryHandle {
    fn committed(&self, outcome: Committed) {
        self.do_send(outcome);
    }
}
