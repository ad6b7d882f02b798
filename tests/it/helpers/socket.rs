//! A small Socket.IO v5 / Engine.IO v4 client over tokio-tungstenite, so tests control every
//! frame (and can stop reading), and a long-polling client that can upgrade mid-stream.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use super::TestApp;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A Socket.IO packet as the tests care about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    Event(String, Value),
    Ack(u64, Value),
    Disconnect,
    Other(String),
}

/// Reads one Socket.IO packet (the Engine.IO `4` already stripped).
pub fn parse_packet(text: &str) -> Packet {
    let split = |rest: &str| {
        let at = rest.find('[').unwrap_or(rest.len());
        let id = rest[..at].parse().unwrap_or(0);
        let args: Value = serde_json::from_str(&rest[at..]).unwrap_or_default();
        (id, args)
    };
    if text.starts_with('1') {
        Packet::Disconnect
    } else if let Some(rest) = text.strip_prefix('3') {
        let (id, args) = split(rest);
        Packet::Ack(id, args[0].clone())
    } else if let Some(rest) = text.strip_prefix('2') {
        let (_, args) = split(rest);
        let name = args[0].as_str().unwrap_or_default().to_string();
        Packet::Event(name, args.get(1).cloned().unwrap_or(Value::Null))
    } else {
        Packet::Other(text.to_string())
    }
}

pub struct SocketClient {
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    acks: Acks,
    /// The name of every event received and `ack` for every ack, in arrival order.
    arrivals: Arc<Mutex<Vec<String>>>,
    next_ack: u64,
    pub closed: Arc<tokio::sync::Notify>,
    pub is_closed: Arc<std::sync::atomic::AtomicBool>,
    /// Every text frame received, and every WebSocket close frame as `<close>`, in order.
    frames: Arc<Mutex<Vec<String>>>,
    paused: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for SocketClient {
    /// Closing a tab: the connection goes away with the client.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug)]
pub enum ConnectError {
    Refused(String),
    Transport(String),
}

fn transport(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Transport(e.to_string())
}

/// How to open a WebSocket: on a TCP socket with a tiny receive buffer (a slow consumer once
/// it stops reading), and/or as the upgrade of an existing polling session.
#[derive(Default)]
pub struct Dial<'a> {
    pub cookie: Option<String>,
    pub origin: Option<&'a str>,
    pub upgrade_sid: Option<&'a str>,
    pub small_buffer: bool,
}

impl SocketClient {
    /// Connects over WebSocket only and joins namespace `/`.
    pub async fn connect(
        addr: SocketAddr,
        cookie: Option<String>,
        origin: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let dial = Dial {
            cookie,
            origin,
            ..Dial::default()
        };
        Self::dial(addr, dial).await
    }

    /// A WebSocket client with a tiny receive buffer, to play a slow consumer.
    pub async fn connect_small_buffer(
        addr: SocketAddr,
        cookie: Option<String>,
    ) -> Result<Self, ConnectError> {
        let dial = Dial {
            cookie,
            small_buffer: true,
            ..Dial::default()
        };
        Self::dial(addr, dial).await
    }

    pub async fn dial(addr: SocketAddr, dial: Dial<'_>) -> Result<Self, ConnectError> {
        let mut url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        if let Some(sid) = dial.upgrade_sid {
            url.push_str(&format!("&sid={sid}"));
        }
        let mut req = url.into_client_request().unwrap();
        if let Some(cookie) = dial.cookie {
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        if let Some(origin) = dial.origin {
            req.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if dial.small_buffer {
            socket.set_recv_buffer_size(4096).unwrap();
        }
        let tcp = socket.connect(addr).await.map_err(transport)?;
        let (ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(transport)?;
        Self::handshake(ws, dial.upgrade_sid.is_some()).await
    }

    async fn handshake<S>(
        ws: tokio_tungstenite::WebSocketStream<S>,
        upgrade: bool,
    ) -> Result<Self, ConnectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        if upgrade {
            // Upgrading an existing polling session: probe, then switch.
            sink.send(Message::text("2probe"))
                .await
                .map_err(transport)?;
            let reply = next_text(&mut stream)
                .await
                .ok_or(transport("no probe reply"))?;
            if reply != "3probe" {
                return Err(transport(format!("probe answered {reply}")));
            }
            sink.send(Message::text("5")).await.map_err(transport)?;
        } else {
            let open = next_text(&mut stream)
                .await
                .ok_or(transport("no open packet"))?;
            if !open.starts_with('0') {
                return Err(transport(format!("expected open packet, got {open}")));
            }
            sink.send(Message::text("40")).await.map_err(transport)?;
            let connect = loop {
                let packet = next_text(&mut stream)
                    .await
                    .ok_or(transport("closed before connect"))?;
                if packet == "2" {
                    sink.send(Message::text("3")).await.map_err(transport)?;
                } else {
                    break packet;
                }
            };
            if let Some(err) = connect.strip_prefix("44") {
                let v: Value = serde_json::from_str(err).unwrap_or_default();
                return Err(ConnectError::Refused(
                    v["message"].as_str().unwrap_or_default().to_string(),
                ));
            }
            if !connect.starts_with("40") {
                return Err(transport(format!("expected connect, got {connect}")));
            }
        }
        Ok(Self::run(sink, stream))
    }

    fn run(
        mut sink: impl futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin
        + Send
        + 'static,
        mut stream: impl futures_util::Stream<
            Item = Result<Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin
        + Send
        + 'static,
    ) -> Self {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let arrivals: Arc<Mutex<Vec<String>>> = Arc::default();
        let frames: Arc<Mutex<Vec<String>>> = Arc::default();
        let frames2 = frames.clone();
        let closed = Arc::new(tokio::sync::Notify::new());
        let is_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (paused, mut paused_rx) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let (acks2, arrivals2, closed2, is_closed2, pong) = (
            acks.clone(),
            arrivals.clone(),
            closed.clone(),
            is_closed.clone(),
            out_tx.clone(),
        );
        let reader = tokio::spawn(async move {
            loop {
                while *paused_rx.borrow() {
                    if paused_rx.changed().await.is_err() {
                        break;
                    }
                }
                let Some(Ok(msg)) = stream.next().await else {
                    break;
                };
                let Message::Text(text) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        frames2.lock().unwrap().push("<close>".into());
                        break;
                    }
                    continue;
                };
                frames2.lock().unwrap().push(text.to_string());
                if text.as_str() == "2" {
                    let _ = pong.send(Message::text("3"));
                    continue;
                }
                let Some(packet) = text.as_str().strip_prefix('4') else {
                    continue;
                };
                match parse_packet(packet) {
                    Packet::Disconnect => {
                        let _ = ev_tx.send(("disconnect".into(), Value::Null));
                        break;
                    }
                    Packet::Ack(id, value) => {
                        arrivals2.lock().unwrap().push("ack".into());
                        if let Some(tx) = acks2.lock().unwrap().remove(&id) {
                            let _ = tx.send(value);
                        }
                    }
                    Packet::Event(name, value) => {
                        arrivals2.lock().unwrap().push(name.clone());
                        let _ = ev_tx.send((name, value));
                    }
                    Packet::Other(_) => {}
                }
            }
            is_closed2.store(true, std::sync::atomic::Ordering::SeqCst);
            closed2.notify_waiters();
        });
        Self {
            out: out_tx,
            events: ev_rx,
            acks,
            arrivals,
            next_ack: 1,
            closed,
            is_closed,
            frames,
            paused,
            tasks: vec![writer.abort_handle(), reader.abort_handle()],
        }
    }

    /// Stops (or resumes) reading from the connection.
    pub fn pause(&self, paused: bool) {
        let _ = self.paused.send(paused);
    }

    pub fn emit(&self, event: &str, data: Value) {
        self.send_raw(&format!("42{}", json!([event, data])));
    }

    pub fn send_raw(&self, text: &str) {
        let _ = self.out.send(Message::text(text.to_string()));
    }

    pub fn send_message(&self, msg: Message) {
        let _ = self.out.send(msg);
    }

    /// Emits with an ack request; the ack arrives through the returned receiver.
    pub fn emit_with_ack(&mut self, event: &str, data: Value) -> oneshot::Receiver<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, tx);
        self.send_raw(&format!("42{id}{}", json!([event, data])));
        rx
    }

    pub async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let rx = self.emit_with_ack(event, data);
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("ack within 5 s")
            .expect("ack")
    }

    /// Every text frame (and `<close>` for a WebSocket close frame) received so far.
    pub fn frames(&self) -> Vec<String> {
        self.frames.lock().unwrap().clone()
    }

    /// Whether the connection ended without a WebSocket close frame, an Engine.IO CLOSE or a
    /// Socket.IO DISCONNECT: closed at the transport, as a dead node's would be.
    pub fn closed_at_transport(&self) -> bool {
        !self
            .frames()
            .iter()
            .any(|f| f == "<close>" || f == "1" || f.starts_with("41"))
    }

    /// Every event name (and `ack`) received so far, in order.
    pub fn arrivals(&self) -> Vec<String> {
        self.arrivals.lock().unwrap().clone()
    }

    /// The next event named `name` within `within`, skipping others.
    pub async fn expect(&mut self, name: &str, within: Duration) -> Value {
        self.try_expect(name, within)
            .await
            .unwrap_or_else(|| panic!("no `{name}` within {within:?}"))
    }

    pub async fn try_expect(&mut self, name: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((n, v))) if n == name => return Some(v),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Every event received within `within`, in order.
    pub async fn drain(&mut self, within: Duration) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            all.push(ev);
        }
        all
    }

    /// Every event received up to and including the first named `name`, in order; panics if
    /// none comes within `within` (a deadline for a stuck server, not a measure of speed).
    pub async fn until(&mut self, name: &str, within: Duration) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    let last = ev.0 == name;
                    all.push(ev);
                    if last {
                        return all;
                    }
                }
                _ => panic!("no `{name}` within {within:?} after {} events", all.len()),
            }
        }
    }

    /// The `seq` of every source event received within `within`, in order.
    pub async fn source_seqs(&mut self, within: Duration) -> Vec<i64> {
        self.drain(within)
            .await
            .into_iter()
            .filter(|(n, _)| n.starts_with("source:"))
            .filter_map(|(_, v)| v["seq"].as_i64())
            .collect()
    }

    /// Waits until the server closes the connection.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        let notified = self.closed.notified();
        if self.is_closed.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        tokio::time::timeout(within, notified).await.is_ok()
            || self.is_closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `session:ended` with `reason`, then the Socket.IO disconnect, in that order.
    pub async fn expect_session_ended(&mut self, reason: &str, within: Duration) {
        let ended = self.expect("session:ended", within).await;
        assert_eq!(ended, json!({ "reason": reason }));
        self.expect("disconnect", within).await;
    }

    pub async fn join(&mut self, vault: &str) -> Value {
        self.emit_ack("vault:join", json!(vault)).await
    }
}

async fn next_text(
    stream: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> Option<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// An Engine.IO long-polling session, driven by hand.
pub struct PollingClient {
    http: reqwest::Client,
    url: String,
    cookie: Option<String>,
    origin: Option<String>,
    pub sid: String,
}

impl PollingClient {
    /// Opens a session (no Socket.IO connect yet).
    pub async fn open(app: &TestApp, cookie: Option<String>, origin: Option<&str>) -> Self {
        let http = reqwest::Client::new();
        let mut client = Self {
            http,
            url: app.url("/socket.io/?EIO=4&transport=polling"),
            cookie,
            origin: origin.map(str::to_string),
            sid: String::new(),
        };
        let open = client
            .with(client.http.get(&client.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let handshake: Value =
            serde_json::from_str(open.trim_start_matches('0')).expect("open packet");
        client.sid = handshake["sid"].as_str().unwrap().to_string();
        client.url = format!("{}&sid={}", client.url, client.sid);
        client
    }

    fn with(&self, mut rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(o) = &self.origin {
            rb = rb.header("origin", o);
        }
        rb
    }

    /// Posts one Engine.IO packet; the HTTP status comes back.
    pub async fn send(&self, packet: &str) -> reqwest::StatusCode {
        let posted = self
            .with(self.http.post(&self.url))
            .body(packet.to_string());
        posted.send().await.unwrap().status()
    }

    pub async fn emit(&self, event: &str, data: Value, ack: Option<u64>) -> reqwest::StatusCode {
        let id = ack.map(|id| id.to_string()).unwrap_or_default();
        self.send(&format!("42{id}{}", json!([event, data]))).await
    }

    /// One poll: the Socket.IO packets it carried (pings are answered), or the error status.
    pub async fn poll(&self) -> Result<Vec<Packet>, reqwest::StatusCode> {
        let resp = self.with(self.http.get(&self.url)).send().await.unwrap();
        if !resp.status().is_success() {
            return Err(resp.status());
        }
        let body = resp.text().await.unwrap();
        let mut packets = Vec::new();
        for frame in body.split('\u{1e}') {
            if frame == "2" {
                self.send("3").await;
            } else if let Some(packet) = frame.strip_prefix('4') {
                packets.push(parse_packet(packet));
            }
        }
        Ok(packets)
    }
}

/// Engine.IO long-polling: handshake, then `40`, returning the sid and the connect reply.
pub async fn polling_connect(
    app: &TestApp,
    cookie: Option<String>,
    origin: Option<&str>,
) -> (String, String) {
    let client = PollingClient::open(app, cookie, origin).await;
    let posted = client.send("40").await;
    assert!(posted.is_success(), "POST 40: {posted}");
    let url = client.url.clone();
    // A poll may carry several packets (a ping among them), separated by U+001E.
    for _ in 0..5 {
        let body = client
            .with(client.http.get(&url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(reply) = body.split('\u{1e}').find(|p| p.starts_with('4')) {
            return (client.sid, reply.to_string());
        }
    }
    (client.sid, String::new())
}
