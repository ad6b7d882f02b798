//! The joins' role reads are batched: joins that ask while a read is in flight are answered
//! together by the next one, each with its own role and replay, and never from a read that
//! began before they asked. The pool is held so that the joins pile up deterministically: the
//! first join's read waits for a connection while the others ask.
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const QUIET: Duration = Duration::from_millis(400);
const READS: &str = "syncscript_join_access_reads_total";

async fn metric(app: &TestApp, series: &str) -> i64 {
    let text = app.client().get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1)
}

/// Joins `vault` with `opener` while the pool is held (its read waits for a connection), then
/// sends every join of `joins` meanwhile and lets the pool go: the opener is answered by the
/// first read, all of `joins` by the next. Returns each join's ack and the reads it took.
async fn batched(
    app: &TestApp,
    opener: &mut SocketClient,
    vault: &str,
    joins: &mut [(SocketClient, Value)],
) -> (Vec<Value>, i64) {
    let before = metric(app, READS).await;
    let held = app.hold_pool().await;
    let first = opener.emit_with_ack("vault:join", json!(vault));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acks: Vec<_> = joins
        .iter_mut()
        .map(|(socket, payload)| socket.emit_with_ack("vault:join", payload.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);

    let within = Duration::from_secs(10);
    let opened = tokio::time::timeout(within, first).await.unwrap().unwrap();
    assert_eq!(opened["ok"], true);
    let mut answered = Vec::new();
    for ack in acks {
        answered.push(tokio::time::timeout(within, ack).await.unwrap().unwrap());
    }
    (answered, metric(app, READS).await - before)
}

#[tokio::test]
async fn concurrent_joins_of_many_vaults_share_a_read_and_each_gets_its_role_and_replay() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let mut joins = Vec::new();
    let mut expected = Vec::new();
    for i in 0..4 {
        let vault = owner.create_vault(&format!("Batched {i}")).await;
        let members = app.crowd(&vault, 2).await;
        let n = 3 + i as i64;
        let latest = app.commit_sources(&vault, n as usize, false).await;
        let replay: Vec<i64> = (latest - n + 1..=latest).collect();
        let since = json!({ "vaultId": vault, "since": latest - n });
        joins.push((app.socket(&owner).await, since.clone()));
        expected.push(("owner", latest, replay.clone()));
        for member in &members {
            joins.push((app.socket(member).await, since.clone()));
            expected.push(("viewer", latest, replay.clone()));
        }
    }
    let demo = app.demo_vault().await;
    let latest = app.commit_sources(&demo, 2, false).await;
    let contributor = app.login(CONTRIBUTOR).await;
    let since = json!({ "vaultId": demo, "since": latest - 2 });
    joins.push((app.socket(&contributor).await, since));
    expected.push(("contributor", latest, vec![latest - 1, latest]));
    let mut opener = app.socket(&owner).await;

    let (acks, reads) = batched(&app, &mut opener, &demo, &mut joins).await;
    assert_eq!(
        reads,
        2,
        "one read for the opener, one for the {} others",
        acks.len()
    );
    for ((ack, (socket, _)), (role, latest, replay)) in acks.iter().zip(&mut joins).zip(expected) {
        assert_eq!(ack["ok"], true, "{ack}");
        assert_eq!(
            (ack["role"].as_str(), ack["latestSeq"].as_i64()),
            (Some(role), Some(latest))
        );
        assert_eq!(socket.source_seqs(QUIET).await, replay);
    }
}

#[tokio::test]
async fn a_member_removed_before_joining_is_refused_while_batched_with_admitted_joins() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let viewer = app.login(VIEWER).await;
    let removed_id = user_id(&viewer).await;
    let mut joins = vec![(app.socket(&viewer).await, json!(vault))];
    for member in app.crowd(&vault, 2).await {
        joins.push((app.socket(&member).await, json!(vault)));
    }
    let removal = owner
        .delete(&format!("/api/vaults/{vault}/members/{removed_id}"))
        .await;
    assert!(removal.status().is_success());
    let mut opener = app.socket(&owner).await;

    let (acks, reads) = batched(&app, &mut opener, &vault, &mut joins).await;
    assert_eq!(
        reads, 2,
        "the removed member's join was batched with the others"
    );
    let denied = json!({ "code": "FORBIDDEN", "message": "Access denied to vault" });
    assert_eq!(acks[0]["ok"], false, "{}", acks[0]);
    assert_eq!(acks[0]["error"], denied);
    for ack in &acks[1..] {
        assert_eq!(
            (ack["ok"].as_bool(), ack["role"].as_str()),
            (Some(true), Some("viewer"))
        );
    }
}

#[tokio::test]
async fn joins_waiting_on_a_failed_read_are_all_told_unavailable_and_later_joins_get_in() {
    let app = spawn_app_with(&[("SYNCSCRIPT_DATABASE__CONNECT_TIMEOUT", "500ms")]).await;
    let vault = app.demo_vault().await;
    let mut sockets = Vec::new();
    for email in [OWNER, CONTRIBUTOR, VIEWER] {
        sockets.push(app.socket(&app.login(email).await).await);
    }
    let mut gone = app.socket(&app.login(VIEWER).await).await;

    let held = app.hold_pool().await;
    let acks: Vec<_> = sockets
        .iter_mut()
        .map(|s| s.emit_with_ack("vault:join", json!(vault)))
        .collect();
    // A join whose socket goes away while it waits must not stop the reads of the others.
    let _lost = gone.emit_with_ack("vault:join", json!(vault));
    drop(gone);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);

    for ack in acks {
        let ack = tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ack["ok"], false, "{ack}");
        assert_eq!(ack["error"]["code"], "UNAVAILABLE", "{ack}");
    }
    for socket in &mut sockets {
        assert_eq!(socket.join(&vault).await["ok"], true);
    }
}
