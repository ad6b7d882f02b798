//! Serving HTTP: hyper's connection builder on each accepted TCP stream, the poem app as its
//! service, and a WebSocket upgrade handed the TCP stream itself.
//!
//! poem's `Server` boxes every accepted stream and splits it into two halves behind a lock
//! (`poem::listener::BoxIo`), and an upgraded stream reaches the WebSocket through three more
//! layers (poem's `Upgraded`, hyper's, and its `Rewind`). Every frame written to a socket went
//! through all of them, each a pointer to memory that is cold by the time a room's fan-out
//! comes back to that socket: in a profile of one vault's fan-out to 1,000 sockets, the split's
//! lock alone was 6% of the server's user CPU. Here hyper serves the `TcpStream`, and
//! [`Upgrade::stream`] gives a WebSocket the same stream back. (hyper-util's `auto` builder,
//! which poem uses, wraps the stream in a private type to sniff the protocol, so an upgrade
//! could not have it back: [`connection`] sniffs HTTP/2's preface itself.)
//!
//! Every accepted stream is set `TCP_NODELAY`, as Node's HTTP server does: a frame written
//! while the previous one is not yet acknowledged goes out at once, instead of waiting for an
//! acknowledgement the client may delay by 40 ms or more. A connection that sends no whole
//! request head within `server.header_timeout` of opening, or of its previous response, is
//! closed.
use std::{convert::Infallible, future::Future, io, pin::Pin, sync::Arc, task, time::Duration};

use bytes::{Buf, Bytes};
use hyper::{
    body::Incoming,
    server::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use poem::{
    Endpoint,
    endpoint::BoxEndpoint,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// A request's pending upgrade, taken before poem sees the request (poem would keep it behind
/// its own `Upgraded`); [`crate::realtime::transport`] finds it in the request's extensions.
#[derive(Clone)]
pub struct Upgrade(hyper::upgrade::OnUpgrade);

impl Upgrade {
    /// Waits for the switch of protocols, then gives back the connection's TCP stream.
    pub async fn stream(self) -> io::Result<Stream> {
        let upgraded = self.0.await.map_err(io::Error::other)?;
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Ok(Stream {
                // A copy: the bytes are a view of the connection's read buffer (8 KiB and
                // more), which the WebSocket would otherwise keep for its whole life.
                ahead: Bytes::copy_from_slice(&parts.read_buf),
                tcp: parts.io.into_inner(),
            }),
            Err(_) => Err(io::Error::other("an upgraded connection that is not TCP")),
        }
    }
}

/// An upgraded connection: what the client sent ahead of the switch, which hyper had already
/// read (nothing, from any WebSocket client that waits for the handshake), then the stream.
pub struct Stream {
    ahead: Bytes,
    tcp: TcpStream,
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> task::Poll<io::Result<()>> {
        if self.ahead.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.ahead.len().min(buf.remaining());
        buf.put_slice(&self.ahead[..n]);
        self.ahead.advance(n);
        task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> task::Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> task::Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> task::Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> task::Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then accepts nothing more, asks every
/// connection to finish (an idle keep-alive connection closes, a request in flight completes)
/// and returns once they have. A WebSocket is no longer a connection of the server: it lives
/// until the realtime layer closes it.
pub async fn serve(
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = Arc::new(app);
    let local = LocalAddr(listener.local_addr()?.into());
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
        };
        accepted(&tcp);
        let (app, local, remote) = (app.clone(), local.clone(), RemoteAddr(remote.into()));
        let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
            if let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() {
                req.extensions_mut().insert(Upgrade(upgrade));
            }
            let req = (req, local.clone(), remote.clone(), Scheme::HTTP).into();
            let app = app.clone();
            async move {
                let response = app.get_response(req).await;
                Ok::<_, Infallible>(http::Response::from(response))
            }
        });
        connections.spawn(connection(tcp, service, header_timeout, stopping.clone()));
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Sets up an accepted stream: `TCP_NODELAY`, so that no small write waits for the client to
/// acknowledge the one before.
fn accepted(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// Serves one connection: HTTP/2 when it opens with HTTP/2's preface (prior knowledge, as
/// poem's server allowed), else HTTP/1.1 with upgrades. Hyper's HTTP/1 connection is given
/// the `TcpStream` itself, which is what lets an upgrade have it back. A connection silent
/// for `header_timeout` from the start is closed, as hyper closes an HTTP/1 one whose request
/// head takes longer.
async fn connection<S, B>(
    tcp: TcpStream,
    service: S,
    header_timeout: Duration,
    stopping: CancellationToken,
) where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let h2 = tokio::select! {
        h2 = tokio::time::timeout(header_timeout, opens_with_h2_preface(&tcp)) => match h2 {
            Ok(h2) => h2,
            Err(_) => {
                tracing::debug!("connection closed: nothing sent within server.header_timeout");
                return;
            }
        },
        // Nothing sent yet: a connection with no request in flight closes at once.
        _ = stopping.cancelled() => return,
    };
    let io = TokioIo::new(tcp);
    let ended = if h2 {
        let conn = http2::Builder::new(TokioExecutor::new()).serve_connection(io, service);
        until_stopped(conn, &stopping, |c| c.graceful_shutdown()).await
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, service)
            .with_upgrades();
        until_stopped(conn, &stopping, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Drives `conn`; once `stopping`, asks it to finish what it is doing and waits for that.
async fn until_stopped<C: Future>(
    conn: C,
    stopping: &CancellationToken,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => return ended,
        _ = stopping.cancelled() => {}
    }
    graceful_shutdown(conn.as_mut());
    conn.await
}

/// Whether the client's first bytes are HTTP/2's connection preface. Any HTTP/1 request
/// differs within its first two bytes; a preface that arrives in pieces is waited for, up to
/// a second.
async fn opens_with_h2_preface(tcp: &TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; PREFACE.len()];
    for _ in 0..1000 {
        match tcp.peek(&mut buf).await {
            Ok(n) if n > 0 && buf[..n] == PREFACE[..n] => {
                if n == PREFACE.len() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            _ => return false,
        }
    }
    false
}

/// An accept that failed: a connection reset before it was accepted is nothing to wait for;
/// anything else (out of file descriptors, say) is waited out a moment before the next
/// accept, which would only fail again at once.
async fn pause_after(e: &io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => {}
        _ => {
            tracing::warn!(error = %e, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_accepted_stream_has_nagles_algorithm_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        assert!(
            !tcp.nodelay().unwrap(),
            "Nagle's algorithm is on by default"
        );

        accepted(&tcp);

        assert!(tcp.nodelay().unwrap());
    }
}
