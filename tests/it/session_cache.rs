//! Sessions answered from a node's cache: never once they ended, wherever they ended. Each test
//! first shows that the session is cached (the node answers it while its pool is held, so it
//! cannot have read the database), then ends it and replays the cookie.
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, EntityTrait, prelude::Expr};

use crate::helpers::*;

/// A client of `node` carrying `cookie` (a session made on any node).
fn with_cookie(node: &TestApp, cookie: &str) -> impl AsyncFn(&str) -> StatusCode + use<> {
    let (http, base) = (node.client().http, node.url(""));
    let cookie = cookie.to_string();
    async move |path: &str| {
        let resp = http.get(format!("{base}{path}")).header("cookie", &cookie);
        resp.send().await.unwrap().status()
    }
}

/// Shows that `node` answers the session without its database.
async fn assert_cached(node: &TestApp, get: &impl AsyncFn(&str) -> StatusCode) {
    assert_eq!(get("/api/auth/session").await, StatusCode::OK);
    let held = node.hold_pool().await;
    assert_eq!(get("/api/auth/session").await, StatusCode::OK, "cached");
    drop(held);
}

/// Waits (up to 5 s) until `node`'s cache is, or is not, listening.
async fn until_listening(node: &TestApp, listening: bool) {
    for _ in 0..500 {
        if node.state.sessions.is_listening() == listening {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the session cache never became listening = {listening}");
}

/// Every session now runs out in `secs`, as if it had been made that long before its end.
async fn expire_in(app: &TestApp, secs: i64) {
    let now = chrono::Utc::now();
    entities::sessions::Entity::update_many()
        .col_expr(
            entities::sessions::Column::ExpiresAt,
            Expr::value(now + chrono::Duration::seconds(secs)),
        )
        .col_expr(entities::sessions::Column::LastSeenAt, Expr::value(now))
        .exec(app.db())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_logout_refuses_its_cached_session_at_once() {
    let app = spawn_app().await;
    let viewer = app.login(VIEWER).await;
    let get = with_cookie(&app, &viewer.cookie_header().unwrap());
    assert_cached(&app, &get).await;
    assert_eq!(viewer.logout().await.status(), StatusCode::NO_CONTENT);
    assert_eq!(get("/api/auth/session").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cached_session_that_expired_is_refused() {
    let app = spawn_app().await;
    let viewer = app.login(VIEWER).await;
    // It runs out in two seconds; its renewal is not due for a minute.
    expire_in(&app, 2).await;
    let get = with_cookie(&app, &viewer.cookie_header().unwrap());
    assert_cached(&app, &get).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get("/api/auth/session").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cached_session_is_still_renewed_by_use() {
    // Renewals are due every tenth of the ttl: every second here.
    let app = spawn_app_with(&[("SYNCSCRIPT_SESSION__TTL", "10s")]).await;
    let viewer = app.login(VIEWER).await;
    let get = with_cookie(&app, &viewer.cookie_header().unwrap());
    assert_cached(&app, &get).await;
    let expiry = async || {
        let session = entities::sessions::Entity::find().one(app.db()).await;
        session.unwrap().unwrap().expires_at
    };
    let before = expiry().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get("/api/auth/session").await, StatusCode::OK);
    let after = expiry().await;
    assert!(
        after - before >= chrono::Duration::seconds(1),
        "pushed out: {before} -> {after}"
    );
}

#[tokio::test]
async fn a_logout_on_one_node_refuses_the_cookie_on_another_that_had_it_cached() {
    if !is_postgres() {
        return;
    }
    let nodes = spawn_nodes(2, &[]).await;
    let viewer = nodes[0].login(VIEWER).await;
    let cookie = viewer.cookie_header().unwrap();
    let on_b = with_cookie(&nodes[1], &cookie);
    assert_cached(&nodes[1], &on_b).await;
    // The session's socket on B goes when B hears of the logout, and not before its cache.
    let socket = SocketClient::connect(nodes[1].addr, Some(cookie), None)
        .await
        .expect("socket connects");
    assert_eq!(viewer.logout().await.status(), StatusCode::NO_CONTENT);
    assert!(socket.wait_closed(Duration::from_secs(1)).await);
    assert_eq!(on_b("/api/auth/session").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_logout_made_while_a_node_could_not_listen_is_refused_there() {
    if !is_postgres() {
        return;
    }
    let nodes = spawn_nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let viewer = a.login(VIEWER).await;
    let on_b = with_cookie(b, &viewer.cookie_header().unwrap());
    assert_cached(b, &on_b).await;

    // B's listener is cut off and cannot come back: B's pool is held and the database takes no
    // new connection. B was started after A, so its listener is the newer one.
    let listener_of_b = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
        WHERE datname = current_database() AND query LIKE 'LISTEN%' \
        ORDER BY backend_start DESC LIMIT 1";
    let admin = sea_orm::Database::connect(std::env::var("TEST_DATABASE_URL").unwrap())
        .await
        .unwrap();
    let name = a.db_url.rsplit('/').next().unwrap().to_string();
    let allow = |yes: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {yes}");
    let held = b.hold_pool().await;
    admin.execute_unprepared(&allow(false)).await.unwrap();
    a.db().execute_unprepared(listener_of_b).await.unwrap();
    until_listening(b, false).await;

    assert_eq!(viewer.logout().await.status(), StatusCode::NO_CONTENT);
    // Meanwhile B answers nothing from its cache: the session waits for the database.
    let meanwhile = tokio::time::timeout(Duration::from_millis(500), on_b("/api/auth/session"));
    let answered = meanwhile.await.ok();
    assert_ne!(answered, Some(StatusCode::OK), "answered from the cache");

    admin.execute_unprepared(&allow(true)).await.unwrap();
    drop(held);
    assert_eq!(on_b("/api/auth/session").await, StatusCode::UNAUTHORIZED);
    until_listening(b, true).await;
    assert_eq!(on_b("/api/auth/session").await, StatusCode::UNAUTHORIZED);
}
