//! Sessions, SQLite writes, sweeps and bounded state at their edges: a sliding session and its
//! cookie, a write transaction racing a session renewal, a sweep over more sessions than one
//! query can bind, and what a node keeps for idle vaults.
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, prelude::Expr};
use serde_json::json;
use syncscript::domain::{Actor, input, sessions, sources, vaults};

use crate::helpers::*;

#[tokio::test]
async fn a_session_in_use_outlives_its_ttl_and_so_does_its_cookie() {
    let app = spawn_app_with(&[
        ("SYNCSCRIPT_SESSION__TTL", "2s"),
        ("SYNCSCRIPT_SESSION__ABSOLUTE_LIFETIME", "1h"),
    ])
    .await;
    let client = app.client();
    let resp = client.login(VIEWER, PASSWORD).await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("Max-Age=3600"),
        "the browser keeps the cookie as long as the session may live: {cookie}"
    );
    // Used every second for five seconds: well past the two-second ttl.
    for second in 1..=5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let status = client.get("/api/auth/session").await.status();
        assert_eq!(status, StatusCode::OK, "still signed in after {second} s");
    }
    // Left alone past the ttl, it expires.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        client.get("/api/auth/session").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_write_that_read_first_survives_a_session_renewal_committed_meanwhile() {
    let app = spawn_app().await;
    let vault: uuid::Uuid = app.demo_vault().await.parse().unwrap();
    let owner = app.login(OWNER).await;
    let token = owner
        .cookie_header()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let actor = Actor {
        user_id: user_id(&owner).await.parse().unwrap(),
        user_name: "Olivia Owner".into(),
    };
    // Make the next use of the session renew it (a write outside any transaction).
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    entities::sessions::Entity::update_many()
        .col_expr(
            entities::sessions::Column::LastSeenAt,
            Expr::value(long_ago),
        )
        .exec(app.db())
        .await
        .unwrap();

    let mut tx = app.state.begin().await.unwrap();
    vaults::find(&*tx, vault).await.unwrap();
    // A request renews a session while the transaction is between its read and its write.
    let renewal = tokio::spawn({
        let (db, life) = (app.db().clone(), app.state.lifetimes());
        async move { sessions::authenticate(&db, &token, life).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new = sources::NewSource {
        title: input::SourceTitle::parse("written after a read").unwrap(),
        file_url: input::FileUrl::parse("https://example.com/a.pdf").unwrap(),
    };
    sources::create(&mut tx, &actor, vault, new)
        .await
        .expect("the write goes through");
    tx.commit().await.expect("and commits");
    let renewed = renewal
        .await
        .unwrap()
        .expect("the renewal goes through too");
    assert!(renewed.is_some());
}

#[tokio::test]
async fn the_session_sweep_checks_seventy_thousand_connected_sessions() {
    let app = spawn_app().await;
    let viewer = app.login(VIEWER).await;
    let live = entities::sessions::Entity::find()
        .filter(
            entities::sessions::Column::UserId
                .eq(user_id(&viewer).await.parse::<uuid::Uuid>().unwrap()),
        )
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut ids: Vec<uuid::Uuid> = (0..70_000).map(|_| uuid::Uuid::new_v4()).collect();
    ids.insert(35_000, live);
    let dead = sessions::dead_among(app.db(), &ids)
        .await
        .expect("one sweep");
    assert_eq!(dead.len(), 70_000);
    assert!(dead.iter().all(|(id, _)| *id != live));
    assert!(
        dead.iter()
            .all(|(_, why)| *why == sessions::EndReason::Revoked)
    );
}

#[tokio::test]
async fn a_node_keeps_nothing_for_vaults_without_sockets() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let mut vaults = Vec::new();
    for i in 0..5 {
        vaults.push(owner.create_vault(&format!("busy {i}")).await);
    }
    let mut socket = app.socket(&owner).await;
    for vault in &vaults {
        assert_eq!(socket.join(vault).await["ok"], true);
        owner.add_source(vault, "an event").await;
    }
    assert_eq!(app.state.rooms.len(), 5);
    for vault in &vaults[..2] {
        assert_eq!(
            socket.emit_ack("vault:leave", json!(vault)).await["ok"],
            true
        );
    }
    assert_eq!(app.state.rooms.len(), 3, "a vault everyone left is freed");
    drop(socket);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.state.rooms.len(), 0, "and so is one whose sockets went");
    // Events for vaults nobody here is in cost no state.
    for vault in &vaults {
        owner.add_source(vault, "nobody listens").await;
    }
    assert_eq!(app.state.rooms.len(), 0);
    assert_eq!(app.state.links.len(), 0, "no link outlives its socket");
}
