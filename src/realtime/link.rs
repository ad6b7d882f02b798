//! The transport under one Engine.IO session, reached from outside socketioxide (which can
//! neither close a socket whose send buffer is full nor say when room frees up in it).
//!
//! A killed link fails every read and write of its WebSocket and refuses every polling
//! request, so the connection closes whatever transport it started on and the client
//! reconnects. Every write that leaves, and every poll answered, tells a replay waiting for
//! room to try again. Links are found by session id: a polling session that upgrades later
//! brings its WebSocket to the same link.
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use socketioxide::socket::Sid;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
};

#[derive(Default)]
pub struct Link {
    killed: AtomicBool,
    read: AtomicWaker,
    write: AtomicWaker,
    on_kill: Notify,
    drained: Notify,
    /// Replays waiting for [`Link::drained`]: only then does a write pay for a wake-up.
    waiting: AtomicUsize,
    /// Packets, and their bytes, that a replay queued since the transport last took some.
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
}

impl Link {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.read.wake();
        self.write.wake();
        self.on_kill.notify_waiters();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Resolves once the link is killed.
    pub async fn killed(&self) {
        let notified = self.on_kill.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_killed() {
            notified.await;
        }
    }

    /// Something left the session's buffer. Called on every write: live fan-out queues nothing
    /// here, so the counters are only written when a replay counted something.
    pub fn drained(&self) {
        if self.queued.load(Ordering::SeqCst) != 0 {
            self.queued.store(0, Ordering::SeqCst);
        }
        if self.queued_bytes.load(Ordering::SeqCst) != 0 {
            self.queued_bytes.store(0, Ordering::SeqCst);
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.drained.notify_waiters();
        }
    }

    /// Waits for the next [`Link::drained`] unless `ready` holds once the wait is registered
    /// (so a drain between the caller's look and the wait is never missed).
    pub async fn wait_drained_unless(&self, ready: impl Fn() -> bool) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let notified = self.drained.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !ready() {
            notified.await;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// A replay queued one more packet of about `bytes`.
    pub fn queued_one(&self, bytes: usize) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// What a replay queued since the transport last took some: packets and bytes.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.queued.load(Ordering::Relaxed),
            self.queued_bytes.load(Ordering::Relaxed),
        )
    }

    fn dropped() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection dropped")
    }

    /// Polls the stream unless the link is killed. A poll that waits registers with the link
    /// too, so that a kill wakes it; one that is ready costs one atomic load.
    fn guard<T>(
        &self,
        waker: &AtomicWaker,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if self.is_killed() {
            return Poll::Ready(Err(Self::dropped()));
        }
        let polled = poll(cx);
        if polled.is_pending() {
            waker.register(cx.waker());
            if self.is_killed() {
                return Poll::Ready(Err(Self::dropped()));
            }
        }
        polled
    }
}

/// The links of the sessions open on this node.
#[derive(Clone, Default)]
pub struct Links(Arc<DashMap<Sid, Arc<Link>>>);

impl Links {
    pub fn get(&self, sid: Sid) -> Option<Arc<Link>> {
        self.0.get(&sid).map(|l| l.clone())
    }

    /// The session's link: the one already registered, else `offered`, else a new one.
    fn claim(&self, sid: Sid, offered: Option<Arc<Link>>) -> Arc<Link> {
        self.0
            .entry(sid)
            .or_insert_with(|| offered.unwrap_or_default())
            .clone()
    }

    /// Registers the session's link for as long as the returned guard lives.
    pub fn register(&self, sid: Sid, offered: Option<Arc<Link>>) -> Registration {
        Registration {
            link: self.claim(sid, offered),
            links: self.clone(),
            sid,
        }
    }

    fn remove(&self, sid: Sid, link: &Arc<Link>) {
        self.0.remove_if(&sid, |_, l| Arc::ptr_eq(l, link));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A session's link, registered until dropped (with the socket that holds it).
pub struct Registration {
    link: Arc<Link>,
    links: Links,
    sid: Sid,
}

impl Registration {
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.links.remove(self.sid, &self.link);
    }
}

/// A WebSocket's upgraded stream, tied to its link. An upgrade's link is registered while
/// its WebSocket lives: the session ends with it.
pub struct Linked<S> {
    inner: S,
    link: Arc<Link>,
    _registration: Option<Registration>,
}

impl<S> Linked<S> {
    pub fn new(inner: S, link: Arc<Link>) -> Self {
        Self {
            inner,
            link,
            _registration: None,
        }
    }

    pub fn upgrading(inner: S, registration: Registration) -> Self {
        Self {
            inner,
            link: registration.link.clone(),
            _registration: Some(registration),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Linked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Linked { inner, link, .. } = &mut *self;
        link.guard(&link.read, cx, |cx| Pin::new(inner).poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Linked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Linked { inner, link, .. } = &mut *self;
        let written = link.guard(&link.write, cx, |cx| Pin::new(inner).poll_write(cx, buf));
        if matches!(written, Poll::Ready(Ok(_))) {
            link.drained();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Linked { inner, link, .. } = &mut *self;
        link.guard(&link.write, cx, |cx| Pin::new(inner).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
