//! Several nodes on one PostgreSQL database (CONTRACT §9): every guarantee of §6 and §7 holds
//! for a client on any node and a mutation through any node. These tests need PostgreSQL
//! (`TEST_DATABASE_URL`); on SQLite they check instead that a second node is refused.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const WITHIN_A_SECOND: Duration = Duration::from_secs(1);

/// Three nodes, or `None` (with a note) where several nodes cannot be: on SQLite.
async fn three_nodes(overrides: &[(&str, &str)]) -> Option<Vec<TestApp>> {
    if !is_postgres() {
        eprintln!("several nodes need PostgreSQL (TEST_DATABASE_URL); skipped");
        return None;
    }
    Some(spawn_nodes(3, overrides).await)
}

async fn joined(node: &TestApp, email: &str, vault: &str) -> (Client, SocketClient) {
    let client = node.login(email).await;
    let mut socket = node.socket(&client).await;
    let ack = socket.join(vault).await;
    assert_eq!(ack["ok"], true, "{email} joins on a node: {ack}");
    (client, socket)
}

fn names(presence: &Value) -> Vec<String> {
    let mut names: Vec<String> = presence["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_change_through_any_node_reaches_clients_on_every_node() {
    let Some(nodes) = three_nodes(&[]).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let mut sockets = Vec::new();
    for node in &nodes {
        sockets.push(joined(node, VIEWER, &vault).await.1);
    }
    for (i, writer) in nodes.iter().enumerate() {
        let title = format!("written through node {i}");
        writer.login(OWNER).await.add_source(&vault, &title).await;
        for socket in &mut sockets {
            let created = socket.expect("source:created", WITHIN_A_SECOND).await;
            assert_eq!(created["source"]["title"], title.as_str());
        }
    }
}

#[tokio::test]
async fn writers_on_two_nodes_reach_a_client_on_a_third_once_each_in_seq_order() {
    let Some(nodes) = three_nodes(&[]).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let (_, mut reader) = joined(&nodes[2], VIEWER, &vault).await;
    let (a, b) = (
        nodes[0].login(OWNER).await,
        nodes[1].login(CONTRIBUTOR).await,
    );
    let write = |client: Client, who: &'static str| {
        let vault = vault.clone();
        async move {
            for i in 0..60 {
                client.add_source(&vault, &format!("{who} {i}")).await;
            }
        }
    };
    tokio::join!(write(a, "a"), write(b, "b"));
    let seqs = reader.source_seqs(Duration::from_secs(2)).await;
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

#[tokio::test]
async fn removal_deletion_logout_and_expiry_reach_sockets_on_other_nodes() {
    let overrides = [("SYNCSCRIPT_REALTIME__SESSION_CHECK_INTERVAL", "200ms")];
    let Some(nodes) = three_nodes(&overrides).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let owner = nodes[0].login(OWNER).await;

    // A member removed through node 0 is revoked on node 1.
    let (viewer, mut on_one) = joined(&nodes[1], VIEWER, &vault).await;
    let viewer_id = user_id(&viewer).await;
    let removed = owner
        .delete(&format!("/api/vaults/{vault}/members/{viewer_id}"))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let revoked = on_one.expect("vault:revoked", WITHIN_A_SECOND).await;
    assert_eq!(revoked["reason"], "removed");

    // A logout through node 0 disconnects the session's socket on node 2.
    let contributor = nodes[0].login(CONTRIBUTOR).await;
    let mut on_two = nodes[2].socket(&contributor).await;
    assert_eq!(contributor.logout().await.status(), StatusCode::NO_CONTENT);
    on_two.expect_session_ended("logout", WITHIN_A_SECOND).await;
    assert!(
        on_two.wait_closed(WITHIN_A_SECOND).await,
        "logged out on every node"
    );

    // A vault deleted through node 0 revokes sockets on nodes 1 and 2.
    let other = owner.create_vault("Doomed").await;
    let mut doomed = Vec::new();
    for node in &nodes[1..] {
        let client = node.login(OWNER).await;
        let mut socket = node.socket(&client).await;
        assert_eq!(socket.join(&other).await["ok"], true);
        doomed.push(socket);
    }
    let deleted = owner.delete(&format!("/api/vaults/{other}")).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for socket in &mut doomed {
        let revoked = socket.expect("vault:revoked", WITHIN_A_SECOND).await;
        assert_eq!(revoked["reason"], "deleted");
    }

    // An expired session's socket on node 1 goes within the session check interval.
    let survivor = nodes[1].login(OWNER).await;
    let mut last = nodes[1].socket(&survivor).await;
    nodes[0].expire_all_sessions().await;
    last.expect_session_ended("expired", WITHIN_A_SECOND).await;
    assert!(
        last.wait_closed(WITHIN_A_SECOND).await,
        "expired on its node"
    );
}

#[tokio::test]
async fn presence_spans_the_nodes() {
    let overrides = [("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "50ms")];
    let Some(nodes) = three_nodes(&overrides).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let (_, mut watcher) = joined(&nodes[0], OWNER, &vault).await;
    let _ = watcher.drain(Duration::from_millis(200)).await;
    let (_, viewer) = joined(&nodes[1], VIEWER, &vault).await;
    let diff = watcher.expect("presence:diff", WITHIN_A_SECOND).await;
    assert_eq!(diff["joins"][0]["userName"], "Vera Viewer");

    let contributor = nodes[2].login(CONTRIBUTOR).await;
    let mut third = nodes[2].socket(&contributor).await;
    let ack = third.join(&vault).await;
    assert_eq!(ack["ok"], true);
    let snapshot = third.expect("presence", WITHIN_A_SECOND).await;
    assert_eq!(
        names(&snapshot),
        ["Carlos Contributor", "Olivia Owner", "Vera Viewer"],
        "the snapshot lists users on every node"
    );

    drop(viewer);
    let left = loop {
        let diff = watcher.expect("presence:diff", WITHIN_A_SECOND).await;
        if !diff["leaves"].as_array().unwrap().is_empty() {
            break diff;
        }
    };
    use sea_orm::EntityTrait;
    let viewer_id = entities::users::Entity::find()
        .all(nodes[0].db())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == VIEWER)
        .unwrap()
        .id;
    assert_eq!(left["leaves"], json!([viewer_id]));
}

#[tokio::test]
async fn the_login_throttle_and_the_socket_cap_hold_for_the_service() {
    let overrides = [("SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER", "3")];
    let Some(nodes) = three_nodes(&overrides).await else {
        return;
    };
    let owner = nodes[0].login(OWNER).await;
    let mut open = Vec::new();
    for node in [&nodes[0], &nodes[0], &nodes[1]] {
        open.push(node.socket(&owner).await);
    }
    let refused = SocketClient::connect(nodes[2].addr, owner.cookie_header(), None).await;
    assert!(
        matches!(&refused, Err(ConnectError::Refused(m)) if m == "TOO_MANY_CONNECTIONS"),
        "{:?}",
        refused.err()
    );
    drop(open.remove(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        SocketClient::connect(nodes[2].addr, owner.cookie_header(), None)
            .await
            .is_ok(),
        "a slot freed on one node is free on another"
    );

    for i in 0..5 {
        let status = nodes[i % 3]
            .client()
            .login(VIEWER, "wrong-password")
            .await
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for node in &nodes {
        let status = node.client().login(VIEWER, PASSWORD).await.status();
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "five failures anywhere count everywhere"
        );
    }
}

#[tokio::test]
async fn a_node_whose_listener_is_cut_off_catches_up_from_the_log() {
    use sea_orm::ConnectionTrait;
    let Some(nodes) = three_nodes(&[]).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let (_, mut socket) = joined(&nodes[0], VIEWER, &vault).await;
    let owner = nodes[1].login(OWNER).await;
    owner.add_source(&vault, "before").await;
    socket.expect("source:created", WITHIN_A_SECOND).await;

    // Every node's listening connection is terminated; commits go on meanwhile.
    nodes[1]
        .db()
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .await
        .unwrap();
    for i in 0..10 {
        owner.add_source(&vault, &format!("during {i}")).await;
    }
    let seqs = socket.source_seqs(Duration::from_secs(3)).await;
    let mut firsts = seqs.clone();
    firsts.dedup();
    assert_eq!(firsts, (2..=11).collect::<Vec<_>>(), "no gap: {seqs:?}");
    owner.add_source(&vault, "after").await;
    let after = socket
        .expect("source:created", Duration::from_secs(2))
        .await;
    assert_eq!(after["seq"], 12, "and it listens again");
}

#[tokio::test]
async fn nodes_started_together_on_an_empty_database_all_come_up() {
    if !is_postgres() {
        return;
    }
    let (db_url, _) = fresh_database().await;
    let (a, b, c) = tokio::join!(
        spawn_on(db_url.clone(), None, &[]),
        spawn_on(db_url.clone(), None, &[]),
        spawn_on(db_url.clone(), None, &[]),
    );
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(
        entities::users::Entity::find().count(a.db()).await.unwrap(),
        4
    );
    assert_eq!(
        entities::vaults::Entity::find()
            .count(b.db())
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.client().get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_second_node_on_one_sqlite_file_is_refused() {
    if is_postgres() {
        return;
    }
    let (db_url, dir) = fresh_database().await;
    let _first = spawn_on(db_url.clone(), dir, &[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = syncscript::startup::Application::build(settings(&db_url, &[]), listener).await;
    let err = second.err().expect("refused").to_string();
    assert!(
        err.contains("in use by another syncscript process"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[tokio::test]
async fn a_node_killed_right_after_its_commits_loses_none_and_its_users_leave() {
    let overrides = [("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "50ms")];
    let Some(nodes) = three_nodes(&overrides).await else {
        return;
    };
    let vault = nodes[0].demo_vault().await;
    let (_, mut watcher) = joined(&nodes[0], OWNER, &vault).await;
    let (_, mut other) = joined(&nodes[1], CONTRIBUTOR, &vault).await;

    let mut doomed =
        BinaryNode::start(&nodes[0].db_url, &[("SYNCSCRIPT_DEMO__SEED", "false")]).await;
    let cookie_name = nodes[0].state.settings.session.cookie_name.clone();
    let (writer, viewer) = (doomed.client(&cookie_name), doomed.client(&cookie_name));
    assert_eq!(writer.login(OWNER, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(
        viewer.login(VIEWER, PASSWORD).await.status(),
        StatusCode::OK
    );
    let mut on_doomed = SocketClient::connect(doomed.addr, viewer.cookie_header(), None)
        .await
        .unwrap();
    assert_eq!(on_doomed.join(&vault).await["ok"], true);
    let _ = watcher.drain(Duration::from_millis(300)).await;

    for i in 0..20 {
        writer
            .add_source(&vault, &format!("from the doomed node {i}"))
            .await;
    }
    doomed.kill().await;
    for socket in [&mut watcher, &mut other] {
        let seqs = socket.source_seqs(Duration::from_secs(2)).await;
        assert_eq!(
            seqs,
            (1..=20).collect::<Vec<_>>(),
            "every commit of the dead node"
        );
    }
    // Its user leaves presence within 30 seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let left = loop {
        let diff = watcher
            .try_expect("presence:diff", deadline - tokio::time::Instant::now())
            .await
            .expect("the dead node's user leaves within 30 s");
        if !diff["leaves"].as_array().unwrap().is_empty() {
            break diff;
        }
    };
    assert_eq!(left["leaves"].as_array().unwrap().len(), 1);
}
