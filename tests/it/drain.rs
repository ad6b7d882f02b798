//! Draining a node before it stops (CONTRACT §1, §7 "Restarts"): readiness fails and new
//! sessions are refused at once, mutations in flight commit and are delivered, and then the
//! sockets are closed at the transport (no CLOSE, no DISCONNECT), spread over the period.
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// A drain long enough to look at the node while it drains.
const SLOW_DRAIN: &[(&str, &str)] = &[
    ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "30s"),
    ("SYNCSCRIPT_SERVER__SHUTDOWN_TIMEOUT", "60s"),
];

async fn polling_connected(app: &TestApp, client: &Client) -> PollingClient {
    let polling = PollingClient::open(app, client.cookie_header(), None).await;
    assert!(polling.send("40").await.is_success());
    let mut connected = false;
    for _ in 0..5 {
        let packets = polling.poll().await.expect("poll");
        if packets
            .iter()
            .any(|p| matches!(p, Packet::Other(p) if p.starts_with("0{")))
        {
            connected = true;
            break;
        }
    }
    assert!(connected, "the polling socket connects");
    polling
}

/// Waits (for a condition, not for time) until `check` holds.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_draining_node_fails_readiness_and_refuses_new_sessions_on_both_transports() {
    let app = spawn_app_with(SLOW_DRAIN).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut ws = app.socket(&owner).await;
    let polling = polling_connected(&app, &owner).await;
    assert_eq!(owner.get("/readyz").await.status(), StatusCode::OK);

    app.state.drain.begin();

    let ready = error_of(owner.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(ready["code"], "UNAVAILABLE");
    let open = owner
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    error_of(open, StatusCode::SERVICE_UNAVAILABLE).await;
    let refused = SocketClient::connect(app.addr, owner.cookie_header(), None).await;
    assert!(
        matches!(&refused, Err(ConnectError::Transport(e)) if e.contains("503")),
        "a new WebSocket session is refused with 503: {:?}",
        refused.err()
    );
    // What is already here keeps working until its turn: both sessions, and REST.
    assert_eq!(ws.join(&vault).await["ok"], true);
    assert_eq!(
        polling.emit("vault:join", json!(vault), Some(1)).await,
        StatusCode::OK
    );
    // A poll may carry only the engine's ping (engineioxide pings a session as soon as it
    // opens), which the helper answers and leaves out: poll until the join's reply comes.
    let mut packets = Vec::new();
    for _ in 0..5 {
        packets = polling
            .poll()
            .await
            .expect("an existing session still polls");
        if !packets.is_empty() {
            break;
        }
    }
    assert!(
        !packets.is_empty(),
        "the join's reply never came over polling"
    );
    assert_eq!(owner.get("/api/vaults").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_draining_node_refuses_requests_of_sessions_it_does_not_have_with_503() {
    // Behind a balancer that keeps a client on one node, a client whose socket the drain
    // closed reconnects: its handshake moves on from the draining node (503), but its next
    // requests hash back here. Its session lives on the other node, so they must move on too.
    let app = spawn_app_with(SLOW_DRAIN).await;
    let elsewhere = spawn_app().await;
    let owner = app.login(OWNER).await;
    let moved = PollingClient::open(&elsewhere, None, None).await;
    let url = app.url(&format!(
        "/socket.io/?EIO=4&transport=polling&sid={}",
        moved.sid
    ));
    let unknown = owner.http.get(&url).send().await.unwrap();
    assert_eq!(
        unknown.status(),
        StatusCode::BAD_REQUEST,
        "not draining: unknown session"
    );
    let here = polling_connected(&app, &owner).await;

    app.state.drain.begin();

    let poll = owner.http.get(&url).send().await.unwrap();
    assert_eq!(
        poll.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a poll moves on"
    );
    let post = owner.http.post(&url).body("40").send().await.unwrap();
    assert_eq!(
        post.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a post moves on"
    );
    assert!(
        here.send("2").await.is_success(),
        "a session of its own still posts"
    );
}

#[tokio::test]
async fn a_drain_closes_websockets_at_the_transport_without_a_close_or_disconnect_packet() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "1s")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut socket = app.socket(&owner).await;
    assert_eq!(socket.join(&vault).await["ok"], true);

    app.state.drain.begin();

    assert!(socket.wait_closed(Duration::from_secs(10)).await);
    assert!(
        socket.closed_at_transport(),
        "no close frame, CLOSE or DISCONNECT: {:?}",
        socket.frames()
    );
}

#[tokio::test]
async fn a_drain_answers_a_pending_long_poll_with_an_error_status_never_a_close_packet() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "1s")]).await;
    let owner = app.login(OWNER).await;
    let polling = polling_connected(&app, &owner).await;
    // The session's buffer is empty, but for the engine's ping if it was queued late
    // (engineioxide pings a session as soon as it opens; the helper answers it and leaves it
    // out): the poll after it waits.
    let pending = tokio::spawn(async move {
        loop {
            let answer = polling.poll().await;
            if !matches!(&answer, Ok(packets) if packets.is_empty()) {
                return (answer, polling);
            }
        }
    });

    app.state.drain.begin();

    let (answer, _polling) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the pending poll is answered")
        .unwrap();
    // Not 200 with a CLOSE packet inside: python-engineio would take that as final.
    assert_eq!(answer, Err(StatusCode::BAD_REQUEST), "a transport error");
}

#[tokio::test]
async fn a_drain_spreads_the_closes_over_its_period() {
    let period = Duration::from_secs(6);
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "6s")]).await;
    let owner = app.login(OWNER).await;
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(app.socket(&owner).await);
    }

    let began = Instant::now();
    app.state.drain.begin();

    let mut closes: Vec<Duration> = Vec::new();
    let mut open_at_first_close = None;
    while closes.len() < sockets.len() {
        let waits = sockets
            .iter()
            .filter(|s| !s.is_closed.load(std::sync::atomic::Ordering::SeqCst))
            .map(|s| Box::pin(s.wait_closed(Duration::from_secs(20))));
        let (closed, _, _) = futures_util::future::select_all(waits).await;
        assert!(closed, "every socket is closed within the drain");
        let still_open = sockets
            .iter()
            .filter(|s| !s.is_closed.load(std::sync::atomic::Ordering::SeqCst))
            .count();
        open_at_first_close.get_or_insert(still_open);
        while closes.len() < sockets.len() - still_open {
            closes.push(began.elapsed());
        }
    }
    assert!(
        open_at_first_close.unwrap() >= 3,
        "sockets are not closed together: {closes:?}"
    );
    assert!(
        *closes.last().unwrap() >= period / 2,
        "not all before the period's midpoint: {closes:?}"
    );
    assert!(sockets.iter().all(SocketClient::closed_at_transport));
}

#[tokio::test]
async fn a_mutation_in_flight_commits_and_is_delivered_before_the_drain_closes_its_socket() {
    let mut app = spawn_app_with(&[
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "1s"),
        ("SYNCSCRIPT_DATABASE__CONNECT_TIMEOUT", "30s"),
    ])
    .await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut writer = app.socket(&owner).await;
    assert_eq!(writer.join(&vault).await["ok"], true);
    let viewer = app.login(VIEWER).await;
    let mut reader = app.socket(&viewer).await;
    assert_eq!(reader.join(&vault).await["ok"], true);

    let held = app.hold_pool().await;
    let ack = writer.emit_with_ack(
        "source:create",
        json!({ "vaultId": vault, "title": "in flight", "fileUrl": "https://example.com/a.pdf" }),
    );
    until("the mutation is running", async || {
        app.state.drain.mutations_in_flight() == 1
    })
    .await;
    app.state.drain.begin();
    // Longer than the drain period: without waiting for the mutation, both would be closed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!writer.is_closed.load(std::sync::atomic::Ordering::SeqCst));
    drop(held);

    let ack = tokio::time::timeout(Duration::from_secs(10), ack)
        .await
        .expect("ack")
        .unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    let created = reader
        .expect("source:created", Duration::from_secs(5))
        .await;
    assert_eq!(created["source"]["title"], "in flight");
    assert!(writer.wait_closed(Duration::from_secs(10)).await);
    assert!(reader.wait_closed(Duration::from_secs(10)).await);
    assert!(writer.closed_at_transport() && reader.closed_at_transport());
    assert!(
        app.server_ended().await.is_ok(),
        "the server stops cleanly after its drain"
    );
}
