//! `spawn_app()`, a cookie-keeping HTTP client with one method per route, and a small
//! Socket.IO v5 / Engine.IO v4 client over tokio-tungstenite (so tests control every frame).
#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use syncscript::{settings::Settings, startup::Application, state::AppState};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

pub const PASSWORD: &str = "demo-password";
pub const OWNER: &str = "owner@demo.com";
pub const CONTRIBUTOR: &str = "contributor@demo.com";
pub const VIEWER: &str = "viewer@demo.com";
pub const OUTSIDER: &str = "outsider@demo.com";

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    pub db_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh database URL: a new PostgreSQL database when `TEST_DATABASE_URL` is set.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("syncscript_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b)
                .to_string();
            (format!("{base}/{name}"), None)
        }
        _ => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (url, Some(dir))
        }
    }
}

pub fn is_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// Settings from the real config files, with test overrides as environment pairs.
pub fn settings(db_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("SYNCSCRIPT_DATABASE__URL".into(), db_url.into()),
        ("SYNCSCRIPT_DEMO__SEED".into(), "true".into()),
        ("SYNCSCRIPT_LOG__LEVEL".into(), "warn".into()),
    ];
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Settings::load_from(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        env,
    )
    .expect("test settings")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let (db_url, dir) = fresh_database().await;
    spawn_on(db_url, dir, overrides).await
}

pub async fn spawn_on(
    db_url: String,
    dir: Option<tempfile::TempDir>,
    overrides: &[(&str, &str)],
) -> TestApp {
    init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(settings(&db_url, overrides), listener)
        .await
        .expect("app builds");
    let (addr, state) = (app.local_addr(), app.state().clone());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        state,
        db_url,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
    }
}

fn init_tracing() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: self.url(""),
            cookie_name: self.state.settings.session.cookie_name.clone(),
            jar_cookie: Arc::default(),
        }
    }

    /// A client signed in as one of the demo users.
    pub async fn login(&self, email: &str) -> Client {
        let client = self.client();
        let resp = client.login(email, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK, "login as {email}");
        client
    }

    pub async fn demo_vault(&self) -> String {
        let owner = self.login(OWNER).await;
        let body = owner
            .get("/api/vaults")
            .await
            .json::<Value>()
            .await
            .unwrap();
        body["vaults"][0]["id"].as_str().unwrap().to_string()
    }

    pub async fn socket(&self, client: &Client) -> SocketClient {
        SocketClient::connect(self.addr, client.cookie_header(), None)
            .await
            .expect("socket connects")
    }

    /// Moves every session's expiry into the past, as if time had run out.
    pub async fn expire_all_sessions(&self) {
        use sea_orm::{EntityTrait, prelude::Expr};
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        entities::sessions::Entity::update_many()
            .col_expr(entities::sessions::Column::ExpiresAt, Expr::value(past))
            .exec(self.db())
            .await
            .unwrap();
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
    }
}

/// An HTTP client that keeps its session cookie.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    cookie_name: String,
    jar_cookie: Arc<Mutex<Option<String>>>,
}

impl Client {
    pub fn cookie_header(&self) -> Option<String> {
        self.jar_cookie.lock().unwrap().clone()
    }

    fn remember(&self, resp: &Response) {
        for value in resp.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            if let Some((pair, _)) = text.split_once(';')
                && pair.starts_with(&format!("{}=", self.cookie_name))
            {
                let cleared = pair.ends_with('=');
                *self.jar_cookie.lock().unwrap() = (!cleared).then(|| pair.to_string());
            }
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        self.remember(&resp);
        resp
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.http
            .patch(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/api/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn logout(&self) -> Response {
        let resp = self
            .http
            .post(format!("{}/api/auth/logout", self.base))
            .send()
            .await
            .unwrap();
        self.remember(&resp);
        resp
    }

    pub async fn create_vault(&self, name: &str) -> String {
        let resp = self.post("/api/vaults", json!({ "name": name })).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json::<Value>().await.unwrap()["vault"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn create_source(&self, vault: &str, title: &str) -> Response {
        self.post(
            &format!("/api/vaults/{vault}/sources"),
            json!({ "title": title, "fileUrl": "https://example.com/paper.pdf" }),
        )
        .await
    }

    /// Creates a source and returns it.
    pub async fn add_source(&self, vault: &str, title: &str) -> Value {
        let resp = self.create_source(vault, title).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create source");
        resp.json::<Value>().await.unwrap()["source"].clone()
    }
}

/// The signed-in user's id.
pub async fn user_id(client: &Client) -> String {
    let session: Value = client.get("/api/auth/session").await.json().await.unwrap();
    session["user"]["id"].as_str().unwrap().to_string()
}

/// Reads an error response and checks it has the contract's shape.
pub async fn error_of(resp: Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("error body is JSON");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
    body["error"].clone()
}

// ---------------------------------------------------------------------------------------------
// Socket.IO client
// ---------------------------------------------------------------------------------------------

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct SocketClient {
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    acks: Acks,
    next_ack: u64,
    pub closed: Arc<tokio::sync::Notify>,
    pub is_closed: Arc<std::sync::atomic::AtomicBool>,
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

impl SocketClient {
    /// Connects over WebSocket only and joins namespace `/`.
    pub async fn connect(
        addr: std::net::SocketAddr,
        cookie: Option<String>,
        origin: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        Self::connect_url(&url, cookie, origin, None).await
    }

    pub async fn connect_url(
        url: &str,
        cookie: Option<String>,
        origin: Option<&str>,
        sid: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let mut req = url.into_client_request().unwrap();
        if let Some(cookie) = cookie {
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        if let Some(origin) = origin {
            req.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        Self::handshake(ws, sid).await
    }

    /// A WebSocket client with a tiny receive buffer, to play a slow consumer.
    pub async fn connect_small_buffer(
        addr: std::net::SocketAddr,
        cookie: Option<String>,
    ) -> Result<Self, ConnectError> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let mut req = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
            .into_client_request()
            .unwrap();
        if let Some(cookie) = cookie {
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        Self::handshake(ws, None).await
    }

    async fn handshake<S>(
        ws: tokio_tungstenite::WebSocketStream<S>,
        sid: Option<&str>,
    ) -> Result<Self, ConnectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        if let Some(_sid) = sid {
            // Upgrading an existing polling session: probe, then switch.
            sink.send(Message::text("2probe"))
                .await
                .map_err(|e| ConnectError::Transport(e.to_string()))?;
            let reply = next_text(&mut stream)
                .await
                .ok_or(ConnectError::Transport("no probe reply".into()))?;
            if reply != "3probe" {
                return Err(ConnectError::Transport(format!("probe answered {reply}")));
            }
            sink.send(Message::text("5"))
                .await
                .map_err(|e| ConnectError::Transport(e.to_string()))?;
        } else {
            let open = next_text(&mut stream)
                .await
                .ok_or(ConnectError::Transport("no open packet".into()))?;
            if !open.starts_with('0') {
                return Err(ConnectError::Transport(format!(
                    "expected open packet, got {open}"
                )));
            }
            sink.send(Message::text("40"))
                .await
                .map_err(|e| ConnectError::Transport(e.to_string()))?;
            let connect = loop {
                let packet = next_text(&mut stream)
                    .await
                    .ok_or(ConnectError::Transport("closed before connect".into()))?;
                if packet == "2" {
                    sink.send(Message::text("3"))
                        .await
                        .map_err(|e| ConnectError::Transport(e.to_string()))?;
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
                return Err(ConnectError::Transport(format!(
                    "expected connect, got {connect}"
                )));
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
        let (acks2, closed2, is_closed2, pong) = (
            acks.clone(),
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
                        break;
                    }
                    continue;
                };
                let text = text.as_str();
                if text == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if text.starts_with("41") {
                    let _ = ev_tx.send(("disconnect".into(), Value::Null));
                    break;
                } else if let Some(rest) = text.strip_prefix("43") {
                    let split = rest.find('[').unwrap_or(rest.len());
                    let id: u64 = rest[..split].parse().unwrap_or(0);
                    let args: Value = serde_json::from_str(&rest[split..]).unwrap_or_default();
                    if let Some(tx) = acks2.lock().unwrap().remove(&id) {
                        let _ = tx.send(args[0].clone());
                    }
                } else if let Some(rest) = text.strip_prefix("42") {
                    let split = rest.find('[').unwrap_or(rest.len());
                    let args: Value = serde_json::from_str(&rest[split..]).unwrap_or_default();
                    let name = args[0].as_str().unwrap_or_default().to_string();
                    let _ = ev_tx.send((name, args.get(1).cloned().unwrap_or(Value::Null)));
                }
            }
            is_closed2.store(true, std::sync::atomic::Ordering::SeqCst);
            closed2.notify_waiters();
        });
        Self {
            out: out_tx,
            events: ev_rx,
            acks,
            next_ack: 1,
            closed,
            is_closed,
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

    pub async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, tx);
        self.send_raw(&format!("42{id}{}", json!([event, data])));
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("ack within 5 s")
            .expect("ack")
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

    /// Waits until the server closes the connection.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        let notified = self.closed.notified();
        if self.is_closed.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        tokio::time::timeout(within, notified).await.is_ok()
            || self.is_closed.load(std::sync::atomic::Ordering::SeqCst)
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

/// Engine.IO long-polling: handshake, then `40`, returning the sid and the connect reply.
pub async fn polling_connect(
    app: &TestApp,
    cookie: Option<String>,
    origin: Option<&str>,
) -> (String, String) {
    let http = reqwest::Client::new();
    let with = |mut rb: reqwest::RequestBuilder| {
        if let Some(c) = &cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb
    };
    let open = with(http.get(app.url("/socket.io/?EIO=4&transport=polling")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handshake: Value = serde_json::from_str(open.trim_start_matches('0')).expect("open packet");
    let sid = handshake["sid"].as_str().unwrap().to_string();
    let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let posted = with(http.post(&url)).body("40").send().await.unwrap();
    assert!(posted.status().is_success(), "POST 40: {}", posted.status());
    // A poll may carry several packets (a ping among them), separated by U+001E.
    for _ in 0..5 {
        let body = with(http.get(&url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(reply) = body.split('\u{1e}').find(|p| p.starts_with('4')) {
            return (sid, reply.to_string());
        }
    }
    (sid, String::new())
}
