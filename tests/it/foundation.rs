//! The foundation: migrations, demo seed, config layering, health, both Socket.IO transports,
//! graceful shutdown of the real binary.
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::Value;
use syncscript::settings::Settings;

use crate::helpers::*;

#[tokio::test]
async fn postgres_connections_send_no_notices_to_the_log() {
    if !is_postgres() {
        return;
    }
    let app = spawn_app().await;
    let shown = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SHOW client_min_messages",
        ))
        .await
        .unwrap()
        .unwrap();
    let level: String = shown.try_get_by_index(0).unwrap();
    assert_eq!(
        level, "warning",
        "a NOTICE such as `already exists, skipping` is not sent"
    );
}

#[tokio::test]
async fn migrations_and_demo_seed_are_idempotent_across_restarts() {
    let (db_url, dir) = fresh_database().await;
    let mut first = spawn_on(db_url.clone(), None, &[]).await;
    let counts = |db: sea_orm::DatabaseConnection| async move {
        (
            entities::users::Entity::find().count(&db).await.unwrap(),
            entities::vaults::Entity::find().count(&db).await.unwrap(),
            entities::memberships::Entity::find()
                .count(&db)
                .await
                .unwrap(),
        )
    };
    let before = counts(first.db().clone()).await;
    assert_eq!(before, (4, 1, 3));
    first.stop().await;
    drop(first);
    let second = spawn_on(db_url, dir, &[]).await;
    assert_eq!(counts(second.db().clone()).await, before);
    let applied = second.db().query_all_raw(sea_orm::Statement::from_string(
        second.db().get_database_backend(),
        "SELECT version FROM seaql_migrations",
    ));
    use migration::MigratorTrait;
    assert_eq!(
        applied.await.unwrap().len(),
        migration::Migrator::migrations().len(),
        "each migration recorded once"
    );
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let app = spawn_app().await;
    let client = app.client();
    let health: Value = client.get("/healthz").await.json().await.unwrap();
    assert_eq!(health, serde_json::json!({ "status": "ok" }));
    assert_eq!(client.get("/readyz").await.status(), StatusCode::OK);
    let metrics = client.get("/metrics").await.text().await.unwrap();
    for name in [
        "syncscript_connected_sockets",
        "syncscript_events_published_total",
        "syncscript_event_fanout_seconds_bucket",
        "syncscript_http_requests_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let resp = app.client().get("/healthz").await;
    assert!(
        resp.headers()
            .get("x-request-id")
            .is_some_and(|v| v.len() >= 32)
    );
}

#[tokio::test]
async fn readyz_turns_503_while_the_database_is_away_and_back_to_200() {
    if !is_postgres() {
        eprintln!("skipped: an embedded SQLite file cannot go away; runs in the PostgreSQL suite");
        return;
    }
    let app = spawn_app().await;
    let client = app.client();
    assert_eq!(client.get("/readyz").await.status(), StatusCode::OK);
    let name = app.db_url.rsplit('/').next().unwrap().to_string();
    let admin = sea_orm::Database::connect(std::env::var("TEST_DATABASE_URL").unwrap())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    let resp = client.get("/readyz").await;
    let err = error_of(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(err["code"], "UNAVAILABLE");
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let mut ok = false;
    for _ in 0..20 {
        if client.get("/readyz").await.status() == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "readyz recovers once the database is back");
}

fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn config_layers_file_profile_named_file_then_environment() {
    let dir = config_dir(&[
        (
            "default.toml",
            "[server]\nport = 4000\n[session]\ncookie_name = \"from-default\"\n",
        ),
        ("staging.toml", "[server]\nport = 4100\n"),
        ("extra.toml", "[realtime]\nmax_replay = 7\n"),
    ]);
    let extra = dir.path().join("extra.toml").display().to_string();
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let s = Settings::load_from(
        dir.path(),
        env(&[
            ("SYNCSCRIPT_PROFILE", "staging"),
            ("SYNCSCRIPT_CONFIG", &extra),
        ]),
    )
    .unwrap();
    assert_eq!(
        (
            s.server.port,
            s.session.cookie_name.as_str(),
            s.realtime.max_replay
        ),
        (4100, "from-default", 7)
    );
    let s = Settings::load_from(
        dir.path(),
        env(&[
            ("SYNCSCRIPT_PROFILE", "staging"),
            ("SYNCSCRIPT_SERVER__PORT", "4200"),
            ("SYNCSCRIPT_SESSION__COOKIE_NAME", "envcookie"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (s.server.port, s.session.cookie_name.as_str()),
        (4200, "envcookie")
    );
}

#[test]
fn built_in_profiles_set_demo_and_security_defaults() {
    let empty = tempfile::tempdir().unwrap();
    let dev = Settings::load_from(empty.path(), Vec::new()).unwrap();
    assert!(dev.demo.seed && !dev.session.secure);
    assert_eq!(dev.database.url, "sqlite://data/syncscript.db?mode=rwc");
    let prod = Settings::load_from(
        empty.path(),
        vec![("SYNCSCRIPT_PROFILE".into(), "production".into())],
    )
    .unwrap();
    assert!(!prod.demo.seed && prod.session.secure);
    assert_eq!(prod.log.format, syncscript::settings::LogFormat::Json);
    // Production listens for a load balancer: it says what to set for the login throttle.
    let warnings = prod.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("server.trusted_proxies is empty"),
        "{warnings:?}"
    );
    assert!(
        dev.warnings().is_empty(),
        "a laptop on 127.0.0.1 needs no proxy"
    );
}

#[test]
fn a_bad_value_is_refused_with_one_line_naming_the_key() {
    let empty = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        ("SYNCSCRIPT_SERVER__PORT", "eighty", "server.port"),
        ("SYNCSCRIPT_SESSION__TTL", "soon", "session.ttl"),
        ("SYNCSCRIPT_DATABASE__URL", "mysql://x", "database.url"),
        ("SYNCSCRIPT_SERVER__PROT", "1", "prot"),
        // A budget in MiB by mistake: smaller than one event, it would hold nothing.
        (
            "SYNCSCRIPT_REALTIME__HISTORY_BUDGET",
            "16",
            "realtime.history_budget",
        ),
        (
            "SYNCSCRIPT_SERVER__TRUSTED_PROXIES",
            "[\"10.0.0.0/99\"]",
            "server.trusted_proxies",
        ),
        // The drain must fit in the time the node has to stop.
        (
            "SYNCSCRIPT_SERVER__DRAIN_PERIOD",
            "30s",
            "server.drain_period",
        ),
    ] {
        let err = Settings::load_from(empty.path(), vec![(key.into(), value.into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{key}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn database_passwords_are_redacted_for_logs() {
    let shown = syncscript::settings::redact_url("postgres://app:s3cret@db:5432/vault");
    assert!(
        !shown.contains("s3cret") && shown.contains("db:5432"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_socket_connects_over_websocket() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let mut socket = app.socket(&owner).await;
    let vault = app.demo_vault().await;
    let ack = socket.join(&vault).await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn a_socket_connects_over_polling_and_upgrades_to_websocket() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let (sid, reply) = polling_connect(&app, owner.cookie_header(), None).await;
    assert!(reply.starts_with("40{"), "polling connect: {reply}");
    let dial = Dial {
        cookie: owner.cookie_header(),
        upgrade_sid: Some(&sid),
        ..Dial::default()
    };
    let mut socket = SocketClient::dial(app.addr, dial).await.expect("upgrade");
    // After the upgrade the same session answers over the WebSocket.
    let ack = socket.join(&app.demo_vault().await).await;
    assert_eq!(ack["ok"], true, "{ack}");
}

#[tokio::test]
async fn the_binary_shuts_down_gracefully_with_a_client_connected() {
    let (db_url, _dir) = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncscript"))
        .env("SYNCSCRIPT_DATABASE__URL", &db_url)
        .env("SYNCSCRIPT_SERVER__PORT", port.to_string())
        .env("SYNCSCRIPT_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "binary became ready");
    let login = http
        .post(format!("http://{addr}/api/auth/login"))
        .json(&serde_json::json!({ "email": OWNER, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let socket = SocketClient::connect(addr, Some(cookie), None)
        .await
        .expect("socket");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within 15 s")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        socket.wait_closed(Duration::from_secs(2)).await,
        "the socket was closed"
    );
}

fn binary(db_url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_syncscript"));
    cmd.env("SYNCSCRIPT_DATABASE__URL", db_url)
        .env("SYNCSCRIPT_LOG__LEVEL", "warn")
        .env("SYNCSCRIPT_DEMO__SEED", "false");
    cmd
}

#[tokio::test]
async fn migrate_applies_the_schema_and_is_idempotent() {
    let (db_url, _dir) = fresh_database().await;
    for _ in 0..2 {
        let out = binary(&db_url).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let db = sea_orm::Database::connect(&db_url).await.unwrap();
    assert_eq!(
        entities::users::Entity::find().count(&db).await.unwrap(),
        0,
        "the users table exists and is empty"
    );
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_the_user_can_log_in() {
    use std::io::Write;
    let (db_url, dir) = fresh_database().await;
    let mut child = binary(&db_url)
        .args([
            "user",
            "create",
            "--email",
            "Grace@Example.org",
            "--name",
            "Grace",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long passphrase\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("grace@example.org"));

    let again = binary(&db_url)
        .args([
            "user",
            "create",
            "--email",
            "grace@example.org",
            "--name",
            "G",
            "--password-stdin",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a duplicate email is refused");

    let app = spawn_on(db_url, dir, &[("SYNCSCRIPT_DEMO__SEED", "false")]).await;
    assert_eq!(
        app.client()
            .login("grace@example.org", "a long passphrase")
            .await
            .status(),
        StatusCode::OK
    );
}

#[test]
fn the_binary_refuses_a_bad_config_value_in_one_line() {
    let out = binary("sqlite::memory:")
        .env("SYNCSCRIPT_SERVER__PORT", "eighty")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");
}

#[tokio::test]
async fn expired_sessions_are_purged_periodically() {
    // A session is kept one session check interval past its expiry, for the socket sweeps.
    let app = spawn_app_with(&[
        ("SYNCSCRIPT_SESSION__CLEANUP_INTERVAL", "100ms"),
        ("SYNCSCRIPT_REALTIME__SESSION_CHECK_INTERVAL", "100ms"),
    ])
    .await;
    app.login(OWNER).await;
    app.login(VIEWER).await;
    app.expire_all_sessions().await;
    let fresh = app.login(CONTRIBUTOR).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        entities::sessions::Entity::find()
            .count(app.db())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        fresh.get("/api/auth/session").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_oversized_polling_packet_is_refused_by_the_transport() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let (sid, _) = polling_connect(&app, owner.cookie_header(), None).await;
    let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let body = format!("42[\"vault:join\",\"{}\"]", "x".repeat(100 * 1024));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("cookie", owner.cookie_header().unwrap())
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(!resp.status().is_success(), "got {}", resp.status());
    assert_eq!(app.client().get("/healthz").await.status(), StatusCode::OK);
}
