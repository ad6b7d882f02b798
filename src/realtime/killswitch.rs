//! A way to drop one WebSocket connection from outside socketioxide: the upgraded stream is
//! wrapped so that, once killed, every read and write fails and the transport closes. Used
//! for slow consumers, whose full send buffer leaves no room even for a disconnect packet.
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Clone, Default)]
pub struct KillSwitch(Arc<Inner>);

#[derive(Default)]
struct Inner {
    killed: AtomicBool,
    read: AtomicWaker,
    write: AtomicWaker,
}

impl KillSwitch {
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.read.wake();
        self.0.write.wake();
    }

    fn check(&self, waker: &AtomicWaker, cx: &Context<'_>) -> Option<std::io::Error> {
        waker.register(cx.waker());
        self.0.killed.load(Ordering::SeqCst).then(|| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "slow consumer dropped",
            )
        })
    }
}

pub struct Killable<S> {
    inner: S,
    switch: KillSwitch,
}

impl<S> Killable<S> {
    pub fn new(inner: S, switch: KillSwitch) -> Self {
        Self { inner, switch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Killable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(err) = self.switch.check(&self.switch.0.read, cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Killable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(err) = self.switch.check(&self.switch.0.write, cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(err) = self.switch.check(&self.switch.0.write, cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
