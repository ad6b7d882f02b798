//! `spawn_app()`, a cookie-keeping HTTP client with one method per route, and Socket.IO
//! clients ([`socket`]).
#![allow(dead_code)]

mod socket;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use syncscript::{settings::Settings, startup::Application, state::AppState};
use tokio::sync::oneshot;

pub use socket::*;

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
        // A test's app drains when the test ends; nobody waits for it.
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD".into(), "1s".into()),
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
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let filter = if filter.is_empty() {
            "info".to_string()
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
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

    /// Takes every connection of the app's pool and keeps them until the result is dropped:
    /// meanwhile the app's next query waits (up to `database.connect_timeout`). On SQLite,
    /// whose writes have a connection of their own, a write transaction is held open too, so
    /// the app's next write waits (until this is dropped).
    pub async fn hold_pool(&self) -> HeldPool {
        async fn take_all<DB: sea_orm::sqlx::Database>(
            pool: &sea_orm::sqlx::Pool<DB>,
        ) -> Vec<sea_orm::sqlx::pool::PoolConnection<DB>> {
            let mut held = Vec::new();
            while let Ok(Ok(conn)) =
                tokio::time::timeout(Duration::from_millis(300), pool.acquire()).await
            {
                held.push(conn);
            }
            held
        }
        if is_postgres() {
            HeldPool::Postgres(take_all(self.db().get_postgres_connection_pool()).await)
        } else {
            let writing = self.state.begin().await.expect("a write transaction");
            HeldPool::Sqlite(
                take_all(self.db().get_sqlite_connection_pool()).await,
                writing,
            )
        }
    }

    /// Commits `n` new sources as the demo owner through the domain layer (faster than HTTP);
    /// `big` ones carry a 2 KB URL. Returns the last `seq`.
    pub async fn commit_sources(&self, vault: &str, n: usize, big: bool) -> i64 {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        use syncscript::domain::{Actor, input, sources};
        let owner = entities::users::Entity::find()
            .filter(entities::users::Column::Email.eq(OWNER))
            .one(self.db())
            .await
            .unwrap()
            .unwrap();
        let actor = Actor {
            user_id: owner.id,
            user_name: owner.name,
        };
        let vault_id: uuid::Uuid = vault.parse().unwrap();
        let url = if big {
            format!("https://example.com/{}", "p".repeat(2000))
        } else {
            "https://example.com/paper.pdf".to_string()
        };
        // A hundred per transaction: each event still has its own seq and notice.
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let mut tx = self.state.begin().await.unwrap();
            for i in chunk {
                let new = sources::NewSource {
                    title: input::SourceTitle::parse(&format!("source {i}")).unwrap(),
                    file_url: input::FileUrl::parse(&url).unwrap(),
                };
                sources::create(&mut tx, &actor, vault_id, new)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        let vault = entities::vaults::Entity::find_by_id(vault_id)
            .one(self.db())
            .await
            .unwrap()
            .unwrap();
        vault.last_seq
    }

    /// `n` more members of a vault (viewers, named `Member 0`…), each signed in: made in the
    /// database with the demo password's hash, so no password is hashed `n` times.
    pub async fn crowd(&self, vault: &str, n: usize) -> Vec<Client> {
        use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
        use syncscript::domain::{Role, sessions};
        let hash = entities::users::Entity::find()
            .filter(entities::users::Column::Email.eq(VIEWER))
            .one(self.db())
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        let mut clients = Vec::new();
        for i in 0..n {
            let id = uuid::Uuid::new_v4();
            entities::users::Entity::insert(entities::users::ActiveModel {
                id: Set(id),
                email: Set(format!("member{i}-{id}@example.com")),
                name: Set(format!("Member {i}")),
                password_hash: Set(hash.clone()),
                created_at: Set(chrono::Utc::now()),
            })
            .exec_without_returning(self.db())
            .await
            .unwrap();
            entities::memberships::Entity::insert(entities::memberships::ActiveModel {
                vault_id: Set(vault.parse().unwrap()),
                user_id: Set(id),
                role: Set(Role::Viewer),
                joined_at: Set(chrono::Utc::now()),
            })
            .exec_without_returning(self.db())
            .await
            .unwrap();
            let (token, _) = sessions::create(self.db(), id, self.state.lifetimes())
                .await
                .unwrap();
            let client = self.client();
            let cookie = format!("{}={token}", self.state.settings.session.cookie_name);
            *client.jar_cookie.lock().unwrap() = Some(cookie);
            clients.push(client);
        }
        clients
    }

    /// Waits for the server task to end by itself (a drain begun), up to 20 s, and gives
    /// what it returned.
    pub async fn server_ended(&mut self) -> std::io::Result<()> {
        let server = self.server.take().expect("server task");
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stops after draining")
            .expect("server task")
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

/// `n` nodes of one service on one fresh database (the first keeps a SQLite folder alive).
pub async fn spawn_nodes(n: usize, overrides: &[(&str, &str)]) -> Vec<TestApp> {
    let (db_url, mut dir) = fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(spawn_on(db_url.clone(), dir.take(), overrides).await);
    }
    nodes
}

/// The server binary as a child process on a free port, killed when dropped.
pub struct BinaryNode {
    pub child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
}

impl BinaryNode {
    pub async fn start(db_url: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncscript"))
            .env("SYNCSCRIPT_DATABASE__URL", db_url)
            .env("SYNCSCRIPT_SERVER__PORT", port.to_string())
            .env("SYNCSCRIPT_LOG__LEVEL", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            let ready = reqwest::get(format!("http://{addr}/readyz")).await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return Self { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the binary did not become ready");
    }

    /// A client of this node, in the shape of [`TestApp::client`].
    pub fn client(&self, cookie_name: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: format!("http://{}", self.addr),
            cookie_name: cookie_name.to_string(),
            jar_cookie: Arc::default(),
        }
    }

    /// SIGKILL: no graceful shutdown, exactly like a crash.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// The connections [`TestApp::hold_pool`] took.
pub enum HeldPool {
    Sqlite(
        Vec<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Sqlite>>,
        syncscript::domain::Tx,
    ),
    Postgres(Vec<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>>),
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
