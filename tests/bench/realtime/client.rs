//! A Socket.IO v5 client (Engine.IO v4, WebSocket transport only) over tokio-tungstenite:
//! one task per socket owns its WebSocket, answers pings, acks joins and records every vault
//! event's `seq` with its arrival instant. With `reconnect`, a lost connection is retried with
//! socket.io-client's default backoff and the vault rejoined with `since` = the last seq it
//! holds with none missing before it.
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

use crate::{contig::Contig, stats::shorten};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What all sockets share: counters, and why connections ended.
#[derive(Default)]
pub struct Hub {
    /// Vault events (frames with a `seq`) received by all sockets.
    pub received: AtomicU64,
    /// Other packets received, by event name.
    pub events: Mutex<HashMap<String, u64>>,
    /// Connections lost for good (no reconnect), by reason.
    pub closes: Mutex<HashMap<String, u64>>,
    pub closed: AtomicU64,
    /// Failed reconnection attempts, by reason.
    pub retry_failures: Mutex<HashMap<String, u64>>,
    pub pings: AtomicU64,
    pub shutting_down: AtomicBool,
    /// When the bench killed the server these sockets were on. A real client's kernel tells
    /// it of the loss at once, and its first reconnection delay counts from then; this
    /// process serves every socket from one core and reads thousands of EOFs one after the
    /// other, so each socket's delay counts from here instead of from when it read its EOF.
    pub killed_at: Mutex<Option<Instant>>,
}

impl Hub {
    /// When the connection lost at `noticed` was really lost: the kill, if it came just before.
    fn lost_at(&self, noticed: Instant) -> Instant {
        let killed = *self.killed_at.lock().unwrap();
        killed
            .filter(|k| *k <= noticed && noticed - *k < Duration::from_secs(5))
            .unwrap_or(noticed)
    }
}

fn bump(map: &Mutex<HashMap<String, u64>>, key: String) {
    *map.lock().unwrap().entry(key).or_insert(0) += 1;
}

/// A reconnecting socket's history since its connection was lost.
#[derive(Default, Clone, Debug)]
pub struct Outage {
    pub down_at: Option<Instant>,
    /// When the first reconnection attempt began (its backoff delay over).
    pub tried_at: Option<Instant>,
    /// When the successful attempt's WebSocket upgrade was answered.
    pub upgraded_at: Option<Instant>,
    /// When Socket.IO's connect was answered (the socket is back).
    pub up_at: Option<Instant>,
    pub rejoined_at: Option<Instant>,
    pub attempts: u32,
    pub resync: bool,
    /// The rejoin's ack was an error (the socket stays connected, outside the room).
    pub refused: Option<String>,
}

/// What the bench reads of one socket.
pub struct SockState {
    /// Every vault event received since the last drain: (seq, arrival).
    pub seqs: Mutex<Vec<(i64, Instant)>>,
    /// The highest seq held with none missing before it (−1 before the first join's ack).
    pub contig: AtomicI64,
    pub outage: Mutex<Outage>,
}

impl SockState {
    pub fn drain(&self) -> Vec<(i64, Instant)> {
        std::mem::take(&mut *self.seqs.lock().unwrap())
    }
}

/// socket.io-client's reconnection delay: reconnectionDelay 1000 ms doubling per attempt,
/// randomizationFactor 0.5, reconnectionDelayMax 5000 ms (its `Backoff.duration()`).
#[derive(Default)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    pub fn duration(&mut self) -> Duration {
        let mut ms = 1000.0 * 2f64.powi(self.attempts.min(16) as i32);
        self.attempts += 1;
        let rand: f64 = rand::random();
        let deviation = (rand * 0.5 * ms).floor();
        ms = if ((rand * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
        Duration::from_millis(ms.min(5000.0) as u64)
    }
}

/// Where a socket connects, as whom.
#[derive(Clone)]
pub struct Target {
    pub addr: String,
    pub cookie: String,
}

pub enum Cmd {
    Join {
        vault: String,
        since: Option<i64>,
        reply: oneshot::Sender<Value>,
    },
}

/// The bench's handle on a socket task; dropping it closes the socket.
pub struct Sock {
    pub cmd: mpsc::UnboundedSender<Cmd>,
    pub state: Arc<SockState>,
}

/// TCP connect, WebSocket upgrade, Engine.IO open, Socket.IO `40` → `40{…}`.
pub async fn handshake(target: &Target) -> Result<Ws, String> {
    handshake_timed(target).await.map(|(ws, _)| ws)
}

/// [`handshake`], and when its WebSocket upgrade was answered.
async fn handshake_timed(target: &Target) -> Result<(Ws, Instant), String> {
    let mut req = format!("ws://{}/socket.io/?EIO=4&transport=websocket", target.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", target.cookie.parse().unwrap());
    let config = WebSocketConfig::default()
        .read_buffer_size(8192)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let upgraded = Instant::now();
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected open packet, got {open:.60}"));
    }
    send(&mut ws, "40").await?;
    loop {
        let packet = next_text(&mut ws).await?;
        if packet == "2" {
            send(&mut ws, "3").await?;
        } else if packet.starts_with("40") {
            return Ok((ws, upgraded));
        } else if let Some(err) = packet.strip_prefix("44") {
            return Err(format!("connect_error {err:.80}"));
        } else {
            return Err(format!("expected connect reply, got {packet:.60}"));
        }
    }
}

async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => return Err(format!("closed: {f:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(None) => return Err("eof".into()),
            Err(_) => return Err("no packet within 20 s".into()),
        }
    }
}

/// Starts the task that owns `ws`.
pub fn spawn(ws: Ws, target: Target, reconnect: bool, hub: Arc<Hub>) -> Sock {
    let state = Arc::new(SockState {
        seqs: Mutex::new(Vec::new()),
        contig: AtomicI64::new(-1),
        outage: Mutex::new(Outage::default()),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let task = Task {
        target,
        reconnect,
        hub,
        state: state.clone(),
        cmds: rx,
        contig: Contig::default(),
        vault: None,
    };
    tokio::spawn(task.run(ws));
    Sock { cmd: tx, state }
}

enum Ack {
    Reply(oneshot::Sender<Value>),
    Rejoin,
}

enum End {
    /// The bench dropped its handle.
    Dropped,
    Lost(String),
}

struct Task {
    target: Target,
    reconnect: bool,
    hub: Arc<Hub>,
    state: Arc<SockState>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    contig: Contig,
    /// The vault joined, to rejoin after a reconnect.
    vault: Option<String>,
}

impl Task {
    async fn run(mut self, mut ws: Ws) {
        let mut acks: HashMap<u64, Ack> = HashMap::new();
        loop {
            let reason = match self.session(ws, &mut acks).await {
                End::Dropped => return,
                End::Lost(reason) => reason,
            };
            acks.clear();
            if self.hub.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            if !self.reconnect {
                self.hub.closed.fetch_add(1, Ordering::SeqCst);
                bump(&self.hub.closes, reason);
                return;
            }
            let Some(fresh) = self.reconnect().await else {
                return;
            };
            ws = fresh;
            if let Some(vault) = self.vault.clone() {
                // The rejoin goes first on the new connection: ack id 1 is free.
                acks.insert(1, Ack::Rejoin);
                let payload = json!({ "vaultId": vault, "since": self.contig.value });
                if ws.send(join_packet(1, payload)).await.is_err() {
                    continue;
                }
            }
        }
    }

    async fn reconnect(&mut self) -> Option<Ws> {
        let noticed = *self
            .state
            .outage
            .lock()
            .unwrap()
            .down_at
            .get_or_insert_with(Instant::now);
        // socket.io-client waits a delay from the loss, then from each failed attempt.
        let mut since = self.hub.lost_at(noticed);
        let mut backoff = Backoff::default();
        loop {
            tokio::time::sleep_until((since + backoff.duration()).into()).await;
            if self.hub.shutting_down.load(Ordering::SeqCst) || self.cmds.is_closed() {
                return None;
            }
            {
                let mut outage = self.state.outage.lock().unwrap();
                outage.attempts += 1;
                outage.tried_at.get_or_insert_with(Instant::now);
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(20), handshake_timed(&self.target));
            match attempt.await {
                Ok(Ok((ws, upgraded))) => {
                    let mut outage = self.state.outage.lock().unwrap();
                    outage.upgraded_at.get_or_insert(upgraded);
                    outage.up_at.get_or_insert_with(Instant::now);
                    return Some(ws);
                }
                Ok(Err(e)) => bump(&self.hub.retry_failures, shorten(&e)),
                Err(_) => bump(&self.hub.retry_failures, "handshake over 20 s".into()),
            }
            since = Instant::now();
        }
    }

    /// Serves one connection until it ends.
    async fn session(&mut self, ws: Ws, acks: &mut HashMap<u64, Ack>) -> End {
        let (mut sink, mut stream) = ws.split();
        let mut next_ack = 2u64;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let now = Instant::now();
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(f))) => return End::Lost(format!("close frame {f:?}")),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return End::Lost(format!("read error: {e}")),
                        None => return End::Lost("eof".into()),
                    };
                    let s = text.as_str();
                    if s == "2" {
                        self.hub.pings.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = sink.send(Message::text("3")).await {
                            return End::Lost(format!("pong failed: {e}"));
                        }
                    } else if let Some(rest) = s.strip_prefix("42[\"") {
                        self.on_event(rest, now);
                    } else if let Some(rest) = s.strip_prefix("43") {
                        self.on_ack(rest, acks, now);
                    } else if s.starts_with("41") {
                        return End::Lost("server sent Socket.IO disconnect (41)".into());
                    } else if s.starts_with('1') {
                        return End::Lost("server sent Engine.IO close (1)".into());
                    } else {
                        bump(&self.hub.events, format!("other packet {s:.20}"));
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Join { vault, since, reply }) => {
                        let id = next_ack;
                        next_ack += 1;
                        acks.insert(id, Ack::Reply(reply));
                        self.vault = Some(vault.clone());
                        let payload = match since {
                            Some(s) => json!({ "vaultId": vault, "since": s }),
                            None => json!(vault),
                        };
                        if let Err(e) = sink.send(join_packet(id, payload)).await {
                            return End::Lost(format!("send join failed: {e}"));
                        }
                    }
                    None => {
                        let _ = sink.send(Message::Close(None)).await;
                        return End::Dropped;
                    }
                }
            }
        }
    }

    /// `rest` is the packet after `42["`.
    fn on_event(&mut self, rest: &str, now: Instant) {
        let name = rest.split('"').next().unwrap_or("?");
        let is_vault_event = name.starts_with("source:")
            || name.starts_with("member:")
            || name == "vault:updated"
            || name == "vault:deleted";
        if is_vault_event && let Some(seq) = seq_of(rest) {
            self.state.seqs.lock().unwrap().push((seq, now));
            self.hub.received.fetch_add(1, Ordering::Relaxed);
            self.contig.add(seq);
            self.publish_contig();
        } else if name == "error" {
            bump(&self.hub.events, format!("error {rest:.120}"));
        } else {
            bump(&self.hub.events, name.to_string());
        }
    }

    fn on_ack(&mut self, rest: &str, acks: &mut HashMap<u64, Ack>, now: Instant) {
        let split = rest.find('[').unwrap_or(rest.len());
        let id: u64 = rest[..split].parse().unwrap_or(0);
        let args: Value = serde_json::from_str(&rest[split..]).unwrap_or_default();
        let ack = args[0].clone();
        if ack["ok"] == true
            && let Some(latest) = ack["latestSeq"].as_i64()
        {
            self.contig.base(latest);
            self.publish_contig();
        }
        match acks.remove(&id) {
            Some(Ack::Reply(tx)) => {
                let _ = tx.send(ack);
            }
            Some(Ack::Rejoin) => {
                let mut outage = self.state.outage.lock().unwrap();
                outage.rejoined_at.get_or_insert(now);
                outage.resync |= ack["resync"] == true;
                if ack["ok"] != true {
                    let code = ack["error"]["code"].as_str().unwrap_or("?");
                    outage.refused = Some(code.to_string());
                    bump(&self.hub.retry_failures, shorten(&format!("rejoin {ack}")));
                }
            }
            None => {}
        }
    }

    fn publish_contig(&self) {
        let v = self.contig.value.unwrap_or(-1);
        self.state.contig.store(v, Ordering::Relaxed);
    }
}

fn join_packet(id: u64, payload: Value) -> Message {
    Message::text(format!("42{id}{}", json!(["vault:join", payload])))
}

/// The `"seq":N` of an event packet, without parsing the JSON.
fn seq_of(packet: &str) -> Option<i64> {
    let at = packet.find("\"seq\":")? + 6;
    let digits: &str = &packet[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}
