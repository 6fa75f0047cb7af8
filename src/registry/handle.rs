//! The one way to talk to the registry: a typed handle that also knows how many
//! messages wait in the registry's mailbox (actix does not expose it).
//!
//! Every message travels wrapped in [`Enqueued`], which carries a guard that
//! counts it while it exists: created on send, dropped when the registry has
//! handled it — or when it was never delivered (a cancelled request, a closed
//! mailbox) — so the count cannot drift.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Addr, Context, Handler, MailboxError, Message, MessageResult};

use super::RegistryActor;

/// What the registry does with one message type; implemented once per message.
pub trait Handles<M: Message> {
    /// Handles `msg`.
    fn on(&mut self, msg: M, ctx: &mut Context<RegistryActor>) -> M::Result;
}

/// Counts one message while it is in flight.
struct DepthGuard(Arc<AtomicUsize>);

impl DepthGuard {
    fn new(depth: &Arc<AtomicUsize>) -> Self {
        depth.fetch_add(1, Ordering::Relaxed);
        DepthGuard(depth.clone())
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registry message on its way, counted until handled or dropped.
pub struct Enqueued<M> {
    msg: M,
    _guard: DepthGuard,
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
        Enqueued { msg, _guard }: Enqueued<M>,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        drop(_guard);
        MessageResult(self.on(msg, ctx))
    }
}

/// A cheap, cloneable handle on the registry for sessions and HTTP handlers.
#[derive(Clone)]
pub struct RegistryHandle {
    /// The actor.
    addr: Addr<RegistryActor>,
    /// Messages sent and not yet handled.
    depth: Arc<AtomicUsize>,
}

impl RegistryHandle {
    /// A handle on a started registry.
    pub fn new(addr: Addr<RegistryActor>) -> Self {
        RegistryHandle {
            addr,
            depth: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sends without waiting (sessions; their commands are rate limited).
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.addr.do_send(Enqueued {
            msg,
            _guard: DepthGuard::new(&self.depth),
        });
    }

    /// Sends and awaits the answer; waits for mailbox room first, which is the
    /// backpressure HTTP callers get when the registry is behind.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RegistryActor: Handles<M>,
        Context<RegistryActor>: ToEnvelope<RegistryActor, Enqueued<M>>,
    {
        self.addr
            .send(Enqueued {
                msg,
                _guard: DepthGuard::new(&self.depth),
            })
            .await
    }

    /// Messages waiting in the registry's mailbox.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}
