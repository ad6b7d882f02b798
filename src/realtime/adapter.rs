//! socketioxide's local adapter with two more operations: [`Adapter::encode`] encodes an event
//! once, and [`Adapter::send`] hands it to one socket, saying whether its buffer was full.
//!
//! `SocketRef::emit` serializes its data and encodes the packet anew for every socket (a
//! growing `Vec` and a second copy, half of the fan-out's instructions in malloc), and
//! socketioxide's broadcasts encode once but only say how many sends failed, not which: a
//! room's fan-out needs both the shared serialization and, per socket, whether it is a slow
//! consumer. The adapter sends to one socket id at a time through the local adapter, with
//! the event already serialized, so each send only copies the encoded bytes into the
//! Socket.IO frame (socketioxide 0.18 lets nothing public hand a socket an encoded frame).
use std::{
    convert::Infallible,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use serde::Serialize;
use socketioxide::{adapter::Emitter, socket::Sid};
use socketioxide_core::{
    Value,
    adapter::{
        BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, SocketEmitter,
        errors::SocketError,
    },
    packet::Packet,
    parser::{Parse, ParserError},
};

/// How the realtime layer finds the namespace's adapter, which socketioxide keeps to itself.
#[derive(Clone, Default)]
pub struct Handle(Arc<OnceLock<Weak<Adapter>>>);

impl Handle {
    /// The adapter of the namespace, once it is initialised and while the server lives.
    pub fn get(&self) -> Option<Arc<Adapter>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

pub struct Adapter {
    local: CoreLocalAdapter<Emitter>,
    handle: Handle,
}

/// An event encoded once, for any number of sockets.
pub struct Encoded(Packet);

/// What a send found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The socket's buffer was full: a slow consumer.
    Full,
    /// The socket is gone.
    Closed,
}

impl Adapter {
    /// Serializes `data` as the event `event` of the namespace, once.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Encoded, ParserError> {
        let value: Value = self.local.parser().encode_value(data, Some(event))?;
        Ok(Encoded(Packet::event(self.local.path().clone(), value)))
    }

    /// Sends `packet` to the socket `sid`, without waiting.
    pub fn send(&self, sid: Sid, packet: &Encoded) -> Sent {
        match self
            .local
            .broadcast(packet.0.clone(), BroadcastOptions::new(sid))
        {
            Ok(()) => Sent::Queued,
            Err(errors) => match errors.first() {
                Some(SocketError::InternalChannelFull) => Sent::Full,
                _ => Sent::Closed,
            },
        }
    }
}

impl CoreAdapter<Emitter> for Adapter {
    type Error = Infallible;
    type State = Handle;
    type AckStream = <Emitter as SocketEmitter>::AckStream;
    type InitRes = ();

    fn new(handle: &Handle, local: CoreLocalAdapter<Emitter>) -> Self {
        Self {
            local,
            handle: handle.clone(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        // One namespace ("/"): the first adapter is the one.
        let _ = self.handle.0.set(Arc::downgrade(&self));
        on_success();
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Self::Error> {
        Ok(self.local.broadcast_with_ack(packet, opts, timeout).0)
    }

    fn get_local(&self) -> &CoreLocalAdapter<Emitter> {
        &self.local
    }
}

impl DefinedAdapter for Adapter {}
