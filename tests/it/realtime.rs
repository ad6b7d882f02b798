//! The real-time layer (CONTRACT §6, §7): rooms, events after commit, replay, revocation,
//! presence, limits and hostile input — with a real Socket.IO client over WebSocket.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const SOON: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(400);

async fn joined(app: &TestApp, email: &str, vault: &str) -> (Client, SocketClient) {
    let client = app.login(email).await;
    let mut socket = app.socket(&client).await;
    let ack = socket.join(vault).await;
    assert_eq!(ack["ok"], true, "{email} joins: {ack}");
    (client, socket)
}

#[tokio::test]
async fn two_members_see_each_others_changes_the_moment_they_commit() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (owner, mut owner_socket) = joined(&app, OWNER, &vault).await;
    let (_, mut contributor_socket) = joined(&app, CONTRIBUTOR, &vault).await;

    let ack = contributor_socket
        .emit_ack("source:create", json!({ "vaultId": vault, "title": "Over the socket", "fileUrl": "https://e.org/s.pdf" }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let created = owner_socket.expect("source:created", SOON).await;
    assert_eq!(created["source"], ack["source"]);
    assert_eq!(
        (created["seq"].as_i64(), created["vaultId"].as_str()),
        (Some(1), Some(vault.as_str()))
    );
    assert_eq!(created["actor"]["role"], "contributor");

    let id = created["source"]["id"].as_str().unwrap();
    owner
        .patch(
            &format!("/api/sources/{id}"),
            json!({ "title": "Edited over REST" }),
        )
        .await;
    let updated = contributor_socket.expect("source:updated", SOON).await;
    assert_eq!(
        (updated["source"]["title"].as_str(), updated["seq"].as_i64()),
        (Some("Edited over REST"), Some(2))
    );

    let ack = owner_socket
        .emit_ack("source:delete", json!({ "sourceId": id }))
        .await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["source"]["id"].as_str()),
        (Some(true), Some(id))
    );
    let deleted = contributor_socket.expect("source:deleted", SOON).await;
    assert_eq!(
        (deleted["sourceId"].as_str(), deleted["seq"].as_i64()),
        (Some(id), Some(3))
    );
}

#[tokio::test]
async fn join_acks_and_announces_role_and_latest_seq() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    owner.add_source(&vault, "one").await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault }))
        .await;
    assert_eq!(
        ack,
        json!({ "ok": true, "vaultId": vault, "role": "viewer", "latestSeq": 1, "resync": false })
    );
    let announced = socket.expect("vault:joined", SOON).await;
    assert_eq!(
        announced,
        json!({ "vaultId": vault, "role": "viewer", "latestSeq": 1, "resync": false })
    );
    // Without an ack callback the join still works.
    let mut other = app.socket(&viewer).await;
    other.emit("vault:join", json!(vault));
    assert_eq!(other.expect("vault:joined", SOON).await["role"], "viewer");
}

#[tokio::test]
async fn an_outsiders_join_is_refused_and_it_receives_nothing() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let outsider = app.login(OUTSIDER).await;
    let mut socket = app.socket(&outsider).await;
    let ack = socket.join(&vault).await;
    let denied = json!({ "code": "FORBIDDEN", "message": "Access denied to vault" });
    assert_eq!(ack, json!({ "ok": false, "error": denied }));
    assert_eq!(socket.expect("error", SOON).await, denied);
    let unknown = socket.join(&uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(unknown["error"]["code"], "FORBIDDEN");

    app.login(OWNER).await.add_source(&vault, "secret").await;
    let seen = socket.drain(QUIET).await;
    assert!(
        seen.iter().all(|(name, _)| !name.starts_with("source:")),
        "{seen:?}"
    );
    // Still connected: another request is answered.
    assert_eq!(socket.join(&vault).await["ok"], false);
}

#[tokio::test]
async fn a_viewer_listens_but_cannot_mutate_by_any_route() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let source = app.login(OWNER).await.add_source(&vault, "existing").await;
    let sid = source["id"].as_str().unwrap();
    let (viewer, mut socket) = joined(&app, VIEWER, &vault).await;
    let insufficient = json!({ "code": "FORBIDDEN", "message": "Insufficient permissions" });
    for (event, payload) in [
        (
            "source:create",
            json!({ "vaultId": vault, "title": "T", "fileUrl": "https://e.org/a.pdf" }),
        ),
        ("source:update", json!({ "sourceId": sid, "title": "T" })),
        ("source:delete", json!({ "sourceId": sid })),
    ] {
        let ack = socket.emit_ack(event, payload).await;
        assert_eq!(
            ack,
            json!({ "ok": false, "error": insufficient }),
            "{event}"
        );
    }
    assert_eq!(
        viewer.create_source(&vault, "T").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer
            .patch(&format!("/api/sources/{sid}"), json!({ "title": "T" }))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer.delete(&format!("/api/sources/{sid}")).await.status(),
        StatusCode::FORBIDDEN
    );
    // It still hears the owner's changes.
    app.login(OWNER).await.add_source(&vault, "news").await;
    assert_eq!(
        socket.expect("source:created", SOON).await["source"]["title"],
        "news"
    );
}

#[tokio::test]
async fn a_mutation_without_an_ack_reports_failure_with_the_error_event() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (_, mut socket) = joined(&app, VIEWER, &vault).await;
    socket.emit(
        "source:create",
        json!({ "vaultId": vault, "title": "T", "fileUrl": "https://e.org/a.pdf" }),
    );
    assert_eq!(socket.expect("error", SOON).await["code"], "FORBIDDEN");
}

#[tokio::test]
async fn clients_cannot_emit_server_only_events() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (owner, mut socket) = joined(&app, OWNER, &vault).await;
    let (_, mut watcher) = joined(&app, CONTRIBUTOR, &vault).await;
    for event in ["source:created", "source:updated", "source:deleted"] {
        let ack = socket
            .emit_ack(
                event,
                json!({ "vaultId": vault, "source": { "title": "forged" } }),
            )
            .await;
        assert_eq!(
            ack["error"],
            json!({ "code": "FORBIDDEN", "message": "Insufficient permissions" })
        );
        assert_eq!(socket.expect("error", SOON).await["code"], "FORBIDDEN");
    }
    assert!(
        watcher
            .drain(QUIET)
            .await
            .iter()
            .all(|(n, _)| !n.starts_with("source:"))
    );
    let log: Value = owner
        .get(&format!("/api/vaults/{vault}/events"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["latestSeq"], 0, "nothing was written");
}

#[tokio::test]
async fn malformed_payloads_get_validation_errors_and_keep_the_socket() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (_, mut socket) = joined(&app, OWNER, &vault).await;
    let huge = "x".repeat(20_000);
    let cases = [
        ("vault:join", json!(42), "vaultId"),
        ("vault:join", json!("not-a-uuid"), "vaultId"),
        (
            "vault:join",
            json!({ "vaultId": vault, "since": "yesterday" }),
            "since",
        ),
        (
            "vault:join",
            json!({ "vaultId": vault, "since": -1 }),
            "since",
        ),
        (
            "source:create",
            json!({ "vaultId": vault, "title": 7, "fileUrl": "https://e.org" }),
            "title",
        ),
        (
            "source:create",
            json!({ "vaultId": vault, "fileUrl": "https://e.org" }),
            "title",
        ),
        (
            "source:create",
            json!({ "vaultId": "nope", "title": "T", "fileUrl": "https://e.org" }),
            "vaultId",
        ),
        (
            "source:create",
            json!({ "vaultId": vault, "title": huge, "fileUrl": "https://e.org" }),
            "title",
        ),
        (
            "source:update",
            json!({ "sourceId": vault, "version": "2" }),
            "version",
        ),
        ("source:delete", json!({}), "sourceId"),
        ("source:delete", json!([1, 2, 3]), "body"),
    ];
    for (event, payload, field) in cases {
        let ack = socket.emit_ack(event, payload.clone()).await;
        assert_eq!(ack["ok"], false);
        assert_eq!(
            ack["error"]["code"], "VALIDATION_ERROR",
            "{event} {payload}"
        );
        assert_eq!(
            ack["error"]["details"][0]["field"], field,
            "{event} {payload}"
        );
    }
    assert_eq!(socket.join(&vault).await["ok"], true, "still connected");
}

/// The demo vault with the viewer's socket in it, and the owner's new vault "Other" with the
/// owner's socket in it.
async fn two_vaults() -> (TestApp, Client, [String; 2], [SocketClient; 2]) {
    let app = spawn_app().await;
    let demo = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let other = owner.create_vault("Other").await;
    let (_, in_demo) = joined(&app, VIEWER, &demo).await;
    let mut in_other = app.socket(&owner).await;
    assert_eq!(in_other.join(&other).await["ok"], true);
    (app, owner, [demo, other], [in_demo, in_other])
}

#[tokio::test]
async fn rooms_are_isolated_between_vaults() {
    let (_app, owner, [_, other], [mut in_demo, mut in_other]) = two_vaults().await;
    owner.add_source(&other, "only for other").await;
    assert_eq!(
        in_other.expect("source:created", SOON).await["vaultId"].as_str(),
        Some(other.as_str())
    );
    assert!(in_demo.try_expect("source:created", QUIET).await.is_none());
    // Leaving stops the stream.
    assert_eq!(
        in_other.emit_ack("vault:leave", json!(other)).await,
        json!({ "ok": true })
    );
    owner.add_source(&other, "after leaving").await;
    assert!(in_other.try_expect("source:created", QUIET).await.is_none());
}

#[tokio::test]
async fn a_reconnect_with_since_replays_exactly_the_missed_events_in_order() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let (viewer, mut socket) = joined(&app, VIEWER, &vault).await;
    owner.add_source(&vault, "seen live").await;
    let last = socket.expect("source:created", SOON).await["seq"]
        .as_i64()
        .unwrap();
    drop(socket);
    let a = owner.add_source(&vault, "missed a").await;
    owner
        .patch(
            &format!("/api/sources/{}", a["id"].as_str().unwrap()),
            json!({ "title": "missed a2" }),
        )
        .await;
    owner.add_source(&vault, "missed b").await;

    let mut again = app.socket(&viewer).await;
    let ack = again
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": last }))
        .await;
    assert_eq!(
        (ack["latestSeq"].as_i64(), ack["resync"].as_bool()),
        (Some(last + 3), Some(false))
    );
    let events = again.drain(QUIET).await;
    let replayed: Vec<(String, i64)> = events
        .iter()
        .filter(|(n, _)| n.starts_with("source:"))
        .map(|(n, v)| (n.clone(), v["seq"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        replayed,
        [
            ("source:created".to_string(), last + 1),
            ("source:updated".into(), last + 2),
            ("source:created".into(), last + 3)
        ]
    );
    let joined_at = events
        .iter()
        .position(|(n, _)| n == "vault:joined")
        .unwrap();
    assert!(
        events[..joined_at]
            .iter()
            .filter(|(n, _)| n.starts_with("source:"))
            .count()
            == 3,
        "replay comes before vault:joined"
    );
    assert!(
        events[0].1.get("type").is_none(),
        "a replayed event is the broadcast object"
    );
}

#[tokio::test]
async fn too_many_missed_events_or_a_reset_log_ask_for_a_resync() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__MAX_REPLAY", "3")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    for i in 0..5 {
        owner.add_source(&vault, &format!("s{i}")).await;
    }
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 1 }))
        .await;
    assert_eq!(
        (ack["resync"].as_bool(), ack["latestSeq"].as_i64()),
        (Some(true), Some(5))
    );
    let events = socket.drain(QUIET).await;
    assert!(
        events.iter().all(|(n, _)| !n.starts_with("source:")),
        "nothing replayed"
    );
    assert_eq!(
        events.iter().find(|(n, _)| n == "vault:joined").unwrap().1["resync"],
        true
    );

    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 2 }))
        .await;
    assert_eq!(
        ack["resync"], false,
        "exactly max_replay missed is replayed"
    );
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 99 }))
        .await;
    assert_eq!(ack["resync"], true, "since above latestSeq");
}

#[tokio::test]
async fn a_removed_member_is_revoked_at_once_and_hears_nothing_more() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let (viewer, mut first_tab) = joined(&app, VIEWER, &vault).await;
    let mut second_tab = app.socket(&viewer).await;
    assert_eq!(second_tab.join(&vault).await["ok"], true);
    let vid = user_id(&viewer).await;
    assert_eq!(
        owner
            .delete(&format!("/api/vaults/{vault}/members/{vid}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    for tab in [&mut first_tab, &mut second_tab] {
        let revoked = tab.expect("vault:revoked", SOON).await;
        assert_eq!(revoked["vaultId"].as_str(), Some(vault.as_str()));
        assert!(revoked["reason"].is_string());
    }
    owner.add_source(&vault, "after removal").await;
    assert!(
        first_tab
            .try_expect("source:created", QUIET)
            .await
            .is_none()
    );
    assert_eq!(first_tab.join(&vault).await["ok"], false, "cannot rejoin");
}

#[tokio::test]
async fn deleting_a_vault_revokes_every_socket_in_it() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (owner, mut owner_socket) = joined(&app, OWNER, &vault).await;
    let (_, mut viewer_socket) = joined(&app, VIEWER, &vault).await;
    assert_eq!(
        owner.delete(&format!("/api/vaults/{vault}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(viewer_socket.expect("vault:deleted", SOON).await["seq"].is_i64());
    for socket in [&mut owner_socket, &mut viewer_socket] {
        assert_eq!(
            socket.expect("vault:revoked", SOON).await["reason"],
            "deleted"
        );
    }
}

#[tokio::test]
async fn a_role_change_applies_to_the_very_next_socket_mutation() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let (contributor, mut socket) = joined(&app, CONTRIBUTOR, &vault).await;
    let create = json!({ "vaultId": vault, "title": "T", "fileUrl": "https://e.org/a.pdf" });
    assert_eq!(
        socket.emit_ack("source:create", create.clone()).await["ok"],
        true
    );
    let cid = user_id(&contributor).await;
    owner
        .patch(
            &format!("/api/vaults/{vault}/members/{cid}"),
            json!({ "role": "viewer" }),
        )
        .await;
    let ack = socket.emit_ack("source:create", create.clone()).await;
    assert_eq!(ack["error"]["code"], "FORBIDDEN");
    owner
        .patch(
            &format!("/api/vaults/{vault}/members/{cid}"),
            json!({ "role": "contributor" }),
        )
        .await;
    assert_eq!(socket.emit_ack("source:create", create).await["ok"], true);
}

#[tokio::test]
async fn logout_tells_every_socket_of_that_session_only_and_disconnects_it() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (viewer, mut socket) = joined(&app, VIEWER, &vault).await;
    let other_session = app.login(VIEWER).await;
    let mut survivor = app.socket(&other_session).await;
    viewer.logout().await;
    socket.expect_session_ended("logout", SOON).await;
    assert!(
        socket.wait_closed(SOON).await,
        "logged-out socket closed within a second"
    );
    assert_eq!(
        survivor.join(&vault).await["ok"],
        true,
        "the other session's socket lives on"
    );
}

#[tokio::test]
async fn a_session_that_expires_while_connected_is_told_so_and_disconnected() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__SESSION_CHECK_INTERVAL", "200ms")]).await;
    let vault = app.demo_vault().await;
    let (_, mut socket) = joined(&app, VIEWER, &vault).await;
    app.expire_all_sessions().await;
    socket
        .expect_session_ended("expired", Duration::from_secs(3))
        .await;
    assert!(
        socket.wait_closed(Duration::from_secs(3)).await,
        "expired session's socket dropped"
    );
}

#[tokio::test]
async fn a_session_deleted_without_a_notice_is_found_by_the_sweep_and_revoked() {
    use sea_orm::EntityTrait;
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__SESSION_CHECK_INTERVAL", "200ms")]).await;
    let vault = app.demo_vault().await;
    let (_, mut socket) = joined(&app, VIEWER, &vault).await;
    entities::sessions::Entity::delete_many()
        .exec(app.db())
        .await
        .unwrap();
    socket
        .expect_session_ended("revoked", Duration::from_secs(3))
        .await;
}

#[tokio::test]
async fn presence_lists_each_user_once_across_tabs() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "50ms")]).await;
    let vault = app.demo_vault().await;
    let (owner, mut watcher) = joined(&app, OWNER, &vault).await;
    let first = watcher.expect("presence", SOON).await;
    assert_eq!(first["users"].as_array().unwrap().len(), 1);
    let owner_id = user_id(&owner).await;
    let _ = watcher.drain(Duration::from_millis(150)).await;

    let viewer = app.login(VIEWER).await;
    let viewer_id = user_id(&viewer).await;
    let mut tab1 = app.socket(&viewer).await;
    tab1.join(&vault).await;
    let full = tab1.expect("presence", SOON).await;
    let mut ids: Vec<&str> = full["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![owner_id.as_str(), viewer_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "full list, itself included");
    let diff = watcher.expect("presence:diff", SOON).await;
    assert_eq!(
        diff["joins"],
        json!([{ "userId": viewer_id, "userName": "Vera Viewer", "role": "viewer" }])
    );

    let mut tab2 = app.socket(&viewer).await;
    tab2.join(&vault).await;
    let mut tab3 = app.socket(&viewer).await;
    tab3.join(&vault).await;
    assert!(
        watcher
            .try_expect("presence:diff", Duration::from_millis(300))
            .await
            .is_none(),
        "more tabs, no news"
    );
    drop(tab1);
    drop(tab2);
    assert!(
        watcher
            .try_expect("presence:diff", Duration::from_millis(300))
            .await
            .is_none(),
        "a tab remains"
    );
    drop(tab3);
    let diff = watcher
        .expect("presence:diff", Duration::from_secs(2))
        .await;
    assert_eq!(diff["leaves"], json!([viewer_id]));
}

#[tokio::test]
async fn presence_diffs_are_batched_per_interval() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "1s")]).await;
    let vault = app.demo_vault().await;
    let (_, mut watcher) = joined(&app, OWNER, &vault).await;
    let _ = watcher.drain(Duration::from_millis(1200)).await;
    // Sign in and connect first, so that both joins land well within one interval.
    let mut others = Vec::new();
    for email in [CONTRIBUTOR, VIEWER] {
        let client = app.login(email).await;
        others.push(app.socket(&client).await);
    }
    for socket in &others {
        socket.emit("vault:join", json!(vault));
    }
    let diffs: Vec<Value> = watcher
        .drain(Duration::from_millis(2000))
        .await
        .into_iter()
        .filter(|(n, _)| n == "presence:diff")
        .map(|(_, v)| v)
        .collect();
    let joins: usize = diffs
        .iter()
        .map(|d| d["joins"].as_array().unwrap().len())
        .sum();
    assert_eq!(joins, 2);
    assert_eq!(
        diffs.len(),
        1,
        "two arrivals within one interval, one diff: {diffs:?}"
    );
}

#[tokio::test]
async fn a_user_is_limited_in_sockets() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER", "3")]).await;
    let viewer = app.login(VIEWER).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.socket(&viewer).await);
    }
    let refused = SocketClient::connect(app.addr, viewer.cookie_header(), None).await;
    assert!(matches!(refused, Err(ConnectError::Refused(m)) if m == "TOO_MANY_CONNECTIONS"));
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        SocketClient::connect(app.addr, viewer.cookie_header(), None)
            .await
            .is_ok(),
        "a slot frees up on disconnect"
    );
}

#[tokio::test]
async fn a_flooding_socket_is_rate_limited_then_dropped() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__EVENTS_PER_SECOND", "5")]).await;
    let vault = app.demo_vault().await;
    let (_, mut socket) = joined(&app, VIEWER, &vault).await;
    for _ in 0..6 {
        socket.emit("vault:leave", json!(vault));
    }
    let err = socket.expect("error", SOON).await;
    assert_eq!(err["code"], "RATE_LIMITED");
    for _ in 0..50 {
        socket.emit("vault:leave", json!(vault));
    }
    assert!(
        socket.wait_closed(Duration::from_secs(3)).await,
        "persistent flooding disconnects"
    );
    let (_, mut polite) = joined(&app, VIEWER, &vault).await;
    assert_eq!(
        polite.join(&vault).await["ok"],
        true,
        "others are unaffected"
    );
}

#[tokio::test]
async fn a_one_mebibyte_message_closes_only_that_socket() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (_, mut bystander) = joined(&app, CONTRIBUTOR, &vault).await;
    let (_, big) = joined(&app, VIEWER, &vault).await;
    big.send_raw(&format!("42[\"vault:join\",\"{}\"]", "x".repeat(1 << 20)));
    assert!(
        big.wait_closed(Duration::from_secs(3)).await,
        "oversized message closes the socket"
    );
    assert_eq!(bystander.join(&vault).await["ok"], true);
}

#[tokio::test]
async fn garbage_frames_leave_the_server_healthy() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let viewer = app.login(VIEWER).await;
    let nested = format!(
        "42[\"vault:join\",{}{}]",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    for garbage in [
        "42[",
        "49",
        "4",
        "42[\"vault:join\"",
        "42{}",
        "431[]",
        "9",
        &nested,
    ] {
        let socket = app.socket(&viewer).await;
        socket.send_raw(garbage);
        socket.send_message(Message::binary(vec![0u8, 159, 146, 150]));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, mut fine) = joined(&app, OWNER, &vault).await;
    assert_eq!(fine.join(&vault).await["ok"], true);
    assert_eq!(app.client().get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_without_holding_up_the_room_and_catches_up_after() {
    use syncscript::domain::{Actor, input, sources};
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__MAX_BUFFER_SIZE", "128")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let (_, mut healthy) = joined(&app, CONTRIBUTOR, &vault).await;
    let viewer = app.login(VIEWER).await;
    let mut slow = SocketClient::connect_small_buffer(app.addr, viewer.cookie_header())
        .await
        .unwrap();
    assert_eq!(slow.join(&vault).await["ok"], true);
    let _ = slow.drain(Duration::from_millis(100)).await;
    slow.pause(true);
    let connected = app.state.io.sockets().len();
    // Commit large events until the stalled socket's buffers overflow (kernel buffers take a
    // few megabytes first); the healthy socket must keep up the whole time.
    let actor = Actor {
        user_id: user_id(&owner).await.parse().unwrap(),
        user_name: "Olivia Owner".into(),
    };
    let vault_id: uuid::Uuid = vault.parse().unwrap();
    let url = format!("https://example.com/{}", "p".repeat(2000));
    let (mut published, mut received) = (0i64, Vec::new());
    while app.state.io.sockets().len() == connected && published < 6000 {
        for _ in 0..50 {
            let mut tx = app.state.begin().await.unwrap();
            let new = sources::NewSource {
                title: input::SourceTitle::parse(&"t".repeat(300)).unwrap(),
                file_url: input::FileUrl::parse(&url).unwrap(),
            };
            sources::create(&mut tx, &actor, vault_id, new)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            published += 1;
        }
        while let Some(ev) = healthy
            .try_expect("source:created", Duration::from_millis(20))
            .await
        {
            received.push(ev["seq"].as_i64().unwrap());
        }
    }
    assert!(
        app.state.io.sockets().len() == connected - 1,
        "the stalled socket was dropped after {published} events"
    );
    while received.last() != Some(&published) {
        let ev = healthy
            .expect("source:created", Duration::from_secs(2))
            .await;
        received.push(ev["seq"].as_i64().unwrap());
    }
    received.dedup();
    assert_eq!(
        received,
        (1..=published).collect::<Vec<_>>(),
        "the healthy socket got everything, in order"
    );
    slow.pause(false);
    assert!(slow.wait_closed(Duration::from_secs(5)).await);

    let mut back = app.socket(&viewer).await;
    let ack = back
        .emit_ack(
            "vault:join",
            json!({ "vaultId": vault, "since": published - 10 }),
        )
        .await;
    assert_eq!(ack["resync"], false);
    let replayed: Vec<i64> = back
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|(n, _)| n == "source:created")
        .map(|(_, v)| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        replayed,
        (published - 9..=published).collect::<Vec<_>>(),
        "it catches up with since"
    );
}

#[tokio::test]
async fn metrics_count_sockets_rooms_and_events() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (owner, _socket) = joined(&app, OWNER, &vault).await;
    owner.add_source(&vault, "counted").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = app.client().get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(value("syncscript_connected_sockets "), 1.0);
    assert_eq!(value("syncscript_joined_rooms "), 1.0);
    assert_eq!(value("syncscript_events_published_total "), 1.0);
    assert_eq!(value("syncscript_event_fanout_seconds_count "), 1.0);
}

#[tokio::test]
async fn presence_of_more_than_fifty_users_comes_in_pages_of_fifty() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "1s")]).await;
    let vault = app.demo_vault().await;
    let (_, mut watcher) = joined(&app, OWNER, &vault).await;
    let _ = watcher.drain(Duration::from_millis(1200)).await;
    let crowd = app.crowd(&vault, 60).await;
    let mut sockets = Vec::new();
    for member in &crowd {
        let mut socket = app.socket(member).await;
        assert_eq!(socket.join(&vault).await["ok"], true);
        sockets.push(socket);
    }
    // One interval's sixty arrivals: two diffs, neither over fifty entries.
    let diffs: Vec<Value> = watcher
        .drain(Duration::from_millis(2500))
        .await
        .into_iter()
        .filter(|(n, _)| n == "presence:diff")
        .map(|(_, v)| v)
        .collect();
    let sizes: Vec<usize> = diffs
        .iter()
        .map(|d| d["joins"].as_array().unwrap().len())
        .collect();
    assert!(sizes.iter().all(|n| *n <= 50), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 60);

    // A newcomer's snapshot: pages of at most fifty, all but the last marked `more`.
    let mut newcomer = app.socket(&app.login(CONTRIBUTOR).await).await;
    assert_eq!(newcomer.join(&vault).await["ok"], true);
    let pages: Vec<Value> = newcomer
        .drain(QUIET)
        .await
        .into_iter()
        .filter(|(n, _)| n == "presence")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0]["more"], true);
    assert!(pages[1].get("more").is_none());
    let users: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap())
        .collect();
    assert_eq!(pages[0]["users"].as_array().unwrap().len(), 50);
    assert_eq!(users.len(), 62, "the owner, the crowd and the newcomer");
}
