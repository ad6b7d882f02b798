//! The node's event history: rooms open without reading the log, joins of one room that miss
//! the same events read them once, and a join whose events were evicted still gets them all,
//! in order, from the log. Read counts come from `/metrics`, as a benchmark reads them.
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const QUIET: Duration = Duration::from_millis(400);

/// A sample of `/metrics`, by its full name with labels (`-1` if absent).
async fn metric(app: &TestApp, series: &str) -> i64 {
    let text = app.client().get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1)
}

const JOIN_READS: &str = "syncscript_history_log_reads_total{by=\"join\"}";
const FROM_LOG: &str = "syncscript_history_served_events_total{from=\"log\"}";
const FROM_MEMORY: &str = "syncscript_history_served_events_total{from=\"memory\"}";

/// Drops repeats of a `seq` (allowed at the instant of joining), keeping the first.
fn firsts(seqs: Vec<i64>) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    seqs.into_iter().filter(|s| seen.insert(*s)).collect()
}

#[tokio::test]
async fn a_room_opens_without_reading_its_vaults_log() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    app.commit_sources(&vault, 300, false).await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    assert_eq!(socket.join(&vault).await["ok"], true);
    assert_eq!(metric(&app, JOIN_READS).await, 0);
    assert_eq!(metric(&app, "syncscript_history_events").await, 0);
    assert_eq!(metric(&app, "syncscript_history_bytes").await, 0);

    let owner = app.login(OWNER).await;
    owner.add_source(&vault, "relayed").await;
    socket.expect("source:created", QUIET * 5).await;
    assert_eq!(
        metric(&app, "syncscript_history_events").await,
        1,
        "what the room relays is held"
    );
}

#[tokio::test]
async fn joins_of_one_room_missing_the_same_events_read_the_log_once() {
    let app = spawn_app_with(&[("SYNCSCRIPT_DATABASE__MAX_CONNECTIONS", "4")]).await;
    let vault = app.demo_vault().await;
    let latest = app.commit_sources(&vault, 300, false).await;
    let since = latest - 150;
    let viewer = app.login(VIEWER).await;
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(app.socket(&viewer).await);
    }
    // Every join waits on the database, so they all reach the log read together.
    let held = app.hold_pool().await;
    let acks: Vec<_> = sockets
        .iter_mut()
        .map(|s| s.emit_with_ack("vault:join", json!({ "vaultId": vault, "since": since })))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);

    for (socket, ack) in sockets.iter_mut().zip(acks) {
        let ack = tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .expect("joined")
            .unwrap();
        assert_eq!(ack["ok"], true);
        let seqs = firsts(socket.source_seqs(QUIET).await);
        assert_eq!(seqs, (since + 1..=latest).collect::<Vec<_>>());
    }
    assert_eq!(metric(&app, JOIN_READS).await, 1, "one read for six joins");
    assert_eq!(metric(&app, FROM_LOG).await, 150);
    assert_eq!(metric(&app, FROM_MEMORY).await, 5 * 150);
}

#[tokio::test]
async fn a_join_whose_events_were_evicted_reads_them_from_the_log_in_order() {
    // Room for about 25 events of 2 KB across the node.
    let budget = 65536;
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__HISTORY_BUDGET", "65536")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let other = owner.create_vault("Other").await;
    let viewer = app.login(VIEWER).await;
    let mut listener = app.socket(&owner).await;
    assert_eq!(listener.join(&vault).await["ok"], true);
    let mut elsewhere = app.socket(&owner).await;
    assert_eq!(elsewhere.join(&other).await["ok"], true);

    let latest = app.commit_sources(&vault, 60, true).await;
    assert_eq!(listener.source_seqs(QUIET * 3).await.len(), 60);
    assert!(metric(&app, "syncscript_history_bytes").await <= budget);
    // The other vault's events, more recent, push the first vault's out.
    app.commit_sources(&other, 40, true).await;
    assert_eq!(elsewhere.source_seqs(QUIET * 3).await.len(), 40);
    assert!(metric(&app, "syncscript_history_bytes").await <= budget);

    let mut socket = app.socket(&viewer).await;
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 0 }))
        .await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["latestSeq"].as_i64()),
        (Some(true), Some(latest))
    );
    let seqs = firsts(socket.source_seqs(QUIET).await);
    assert_eq!(seqs, (1..=latest).collect::<Vec<_>>());
    assert_eq!(metric(&app, FROM_LOG).await, latest, "all evicted");
    assert_eq!(metric(&app, FROM_MEMORY).await, 0);
    assert!(metric(&app, "syncscript_history_bytes").await <= budget);
}
