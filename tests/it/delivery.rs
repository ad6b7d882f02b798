//! Delivery at the edges (CONTRACT §7): replays larger than a socket's buffer, on every
//! transport; slow consumers whatever transport they started on; and the races around a join,
//! each forced (a stalled reader, a held connection pool) rather than hoped for.
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const SOON: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(400);

fn seqs_of(events: &[(String, Value)]) -> Vec<i64> {
    events
        .iter()
        .filter(|(n, _)| n.starts_with("source:"))
        .map(|(_, v)| v["seq"].as_i64().unwrap())
        .collect()
}

/// Drops repeats of a `seq` (allowed at the instant of joining), keeping the first.
fn firsts(seqs: &[i64]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.client().get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// Polls until `done` says so or the time is up, collecting every packet.
async fn poll_until(
    client: &PollingClient,
    mut done: impl FnMut(&[Packet]) -> bool,
) -> Vec<Packet> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&all) && tokio::time::Instant::now() < deadline {
        all.extend(client.poll().await.expect("poll"));
    }
    all
}

fn acked(id: u64) -> impl Fn(&[Packet]) -> bool {
    move |all| {
        all.iter()
            .any(|p| matches!(p, Packet::Ack(i, _) if *i == id))
    }
}

/// The `seq`s of the replayed events in `packets`, and whether `vault:joined` came after the
/// last of them and the ack after `vault:joined`.
fn replay_order(packets: &[Packet]) -> (Vec<i64>, bool) {
    let names: Vec<&str> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Event(n, _) => Some(n.as_str()),
            Packet::Ack(..) => Some("ack"),
            _ => None,
        })
        .collect();
    let seqs: Vec<i64> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Event(n, v) if n.starts_with("source:") => v["seq"].as_i64(),
            _ => None,
        })
        .collect();
    let last_event = names.iter().rposition(|n| n.starts_with("source:"));
    let joined = names.iter().position(|n| *n == "vault:joined");
    let ack = names.iter().position(|n| *n == "ack");
    let ordered =
        matches!((last_event, joined, ack), (Some(e), Some(j), Some(a)) if e < j && j < a);
    (seqs, ordered)
}

/// A replay that cannot fit in the kernel's socket buffers (a few megabytes on loopback), for
/// a reader that stopped reading: the join has to wait for room.
const STALLED_REPLAY: usize = 2000;
const STALLING: &[(&str, &str)] = &[
    ("SYNCSCRIPT_REALTIME__MAX_BUFFER_SIZE", "16"),
    ("SYNCSCRIPT_REALTIME__MAX_REPLAY", "5000"),
    ("SYNCSCRIPT_REALTIME__STALL_TIMEOUT", "30s"),
];

async fn polling_connected(app: &TestApp, client: &Client) -> PollingClient {
    let polling = PollingClient::open(app, client.cookie_header(), None).await;
    assert!(polling.send("40").await.is_success());
    let connect = poll_until(&polling, |all| !all.is_empty()).await;
    assert!(
        matches!(&connect[0], Packet::Other(p) if p.starts_with("0{")),
        "{connect:?}"
    );
    polling
}

#[tokio::test]
async fn a_replay_of_900_events_arrives_whole_in_order_before_joined_and_the_ack() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let last = app.commit_sources(&vault, 900, false).await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 0 }))
        .await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["latestSeq"].as_i64()),
        (Some(true), Some(last))
    );
    assert_eq!(ack["resync"], false);
    let events = socket.drain(QUIET).await;
    assert_eq!(firsts(&seqs_of(&events)), (1..=900).collect::<Vec<_>>());
    let arrivals = socket.arrivals();
    let joined = arrivals.iter().position(|n| n == "vault:joined").unwrap();
    let ack_at = arrivals.iter().position(|n| n == "ack").unwrap();
    let before_joined = arrivals[..joined]
        .iter()
        .filter(|n| n.starts_with("source:"))
        .count();
    assert_eq!(
        before_joined, 900,
        "the whole replay comes before vault:joined"
    );
    assert!(joined < ack_at, "then the ack");
}

/// A vault with 900 events, and the viewer's polling session that just asked to replay them
/// all (its ack is number 1).
async fn replaying_900_over_polling(app: &TestApp) -> (Client, PollingClient) {
    let vault = app.demo_vault().await;
    app.commit_sources(&vault, 900, false).await;
    let viewer = app.login(VIEWER).await;
    let polling = polling_connected(app, &viewer).await;
    let join = json!({ "vaultId": vault, "since": 0 });
    polling.emit("vault:join", join, Some(1)).await;
    (viewer, polling)
}

#[tokio::test]
async fn a_replay_of_900_events_arrives_whole_over_long_polling() {
    let app = spawn_app().await;
    let (_, polling) = replaying_900_over_polling(&app).await;
    let packets = poll_until(&polling, acked(1)).await;
    let (seqs, ordered) = replay_order(&packets);
    assert_eq!(firsts(&seqs), (1..=900).collect::<Vec<_>>());
    assert!(ordered, "events, then vault:joined, then the ack");
}

#[tokio::test]
async fn a_replay_survives_an_upgrade_from_polling_to_websocket_in_its_middle() {
    let app = spawn_app().await;
    let (viewer, polling) = replaying_900_over_polling(&app).await;
    let mut first = Vec::new();
    while first.is_empty() {
        first = polling.poll().await.expect("poll");
    }
    let (polled, _) = replay_order(&first);
    assert!(
        !polled.is_empty() && polled.len() < 900,
        "the upgrade lands mid-replay ({} polled)",
        polled.len()
    );
    // Polling goes on while the WebSocket is probed, as socket.io-client does: the probe
    // needs room in the session's buffer.
    let polling = std::sync::Arc::new(polling);
    let upgraded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn({
        let (polling, upgraded) = (polling.clone(), upgraded.clone());
        async move {
            let mut got = Vec::new();
            while !upgraded.load(std::sync::atomic::Ordering::SeqCst) {
                match polling.poll().await {
                    Ok(packets) => got.extend(packets),
                    Err(status) => {
                        eprintln!("poll during the upgrade answered {status}");
                        break;
                    }
                }
            }
            got
        }
    });
    let dial = Dial {
        cookie: viewer.cookie_header(),
        upgrade_sid: Some(&polling.sid),
        ..Dial::default()
    };
    let mut ws = SocketClient::dial(app.addr, dial).await.expect("upgrade");
    upgraded.store(true, std::sync::atomic::Ordering::SeqCst);
    let (during, _) = replay_order(&poller.await.unwrap());
    // Until the join's end, however long a loaded machine takes: the replay's pages come as
    // fast as the server gets to them, and a fixed window cut them off mid-replay under load.
    let rest = ws.until("vault:joined", Duration::from_secs(30)).await;
    let mut seqs = polled;
    seqs.extend(during);
    seqs.extend(seqs_of(&rest));
    assert_eq!(firsts(&seqs), (1..=900).collect::<Vec<_>>());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ws.arrivals().iter().any(|n| n == "ack") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = ws.arrivals();
    let joined = arrivals.iter().position(|n| n == "vault:joined");
    let ack = arrivals.iter().position(|n| n == "ack");
    assert!(
        matches!((joined, ack), (Some(j), Some(a)) if j < a),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn a_replay_waiting_for_a_stalled_reader_does_not_hold_up_the_vault() {
    let app = spawn_app_with(STALLING).await;
    let vault = app.demo_vault().await;
    let last = app.commit_sources(&vault, STALLED_REPLAY, true).await;
    let owner = app.login(OWNER).await;
    let mut live = app.socket(&owner).await;
    assert_eq!(live.join(&vault).await["ok"], true);
    let viewer = app.login(VIEWER).await;
    let mut stalled = SocketClient::connect_small_buffer(app.addr, viewer.cookie_header())
        .await
        .unwrap();
    stalled.pause(true);
    let join = stalled.emit_with_ack("vault:join", json!({ "vaultId": vault, "since": 0 }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    owner.add_source(&vault, "goes out at once").await;
    let created = live.expect("source:created", SOON).await;
    assert_eq!(created["source"]["title"], "goes out at once");

    stalled.pause(false);
    let ack = tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    let events = stalled.drain(QUIET).await;
    assert_eq!(
        firsts(&seqs_of(&events)),
        (1..=last + 1).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_slow_consumer_that_upgraded_from_polling_is_closed_and_freed() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__MAX_BUFFER_SIZE", "64")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let (mut healthy, viewer) = (app.socket(&owner).await, app.login(VIEWER).await);
    assert_eq!(healthy.join(&vault).await["ok"], true);
    let polling = polling_connected(&app, &viewer).await;
    let dial = Dial {
        cookie: viewer.cookie_header(),
        upgrade_sid: Some(&polling.sid),
        small_buffer: true,
        ..Dial::default()
    };
    let mut slow = SocketClient::dial(app.addr, dial).await.expect("upgrade");
    assert_eq!(slow.join(&vault).await["ok"], true);
    assert_eq!(metric(&app, "syncscript_connected_sockets").await, 2.0);
    slow.pause(true);

    let mut published = 0;
    while metric(&app, "syncscript_connected_sockets").await == 2.0 && published < 3000 {
        published = app.commit_sources(&vault, 50, true).await;
    }
    assert_eq!(
        metric(&app, "syncscript_connected_sockets").await,
        1.0,
        "the stalled socket was dropped after {published} events"
    );
    assert_eq!(metric(&app, "syncscript_joined_rooms").await, 1.0);
    slow.pause(false);
    assert!(
        slow.wait_closed(Duration::from_secs(5)).await,
        "closed at the transport"
    );

    // Its user left presence, and it catches up with `since` when it comes back.
    let mut back = app.socket(&viewer).await;
    let ack = back
        .emit_ack(
            "vault:join",
            json!({ "vaultId": vault, "since": published - 5 }),
        )
        .await;
    assert_eq!(ack["ok"], true);
    let replayed = back.drain(QUIET).await;
    let presence = &replayed.iter().find(|(n, _)| n == "presence").unwrap().1;
    let ids: Vec<&str> = presence["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"Olivia Owner") && ids.contains(&"Vera Viewer"),
        "{ids:?}"
    );
    assert_eq!(
        firsts(&seqs_of(&replayed)),
        (published - 4..=published).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_slow_consumer_on_long_polling_is_closed_and_freed() {
    let app = spawn_app_with(&[("SYNCSCRIPT_REALTIME__MAX_BUFFER_SIZE", "32")]).await;
    let vault = app.demo_vault().await;
    let viewer = app.login(VIEWER).await;
    let polling = polling_connected(&app, &viewer).await;
    polling.emit("vault:join", json!(vault), Some(1)).await;
    poll_until(&polling, acked(1)).await;
    assert_eq!(metric(&app, "syncscript_connected_sockets").await, 1.0);
    // It stops polling while the vault moves on; its room's task drops it once the buffer is
    // full, which may be just after the commit returns.
    app.commit_sources(&vault, 60, false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(&app, "syncscript_connected_sockets").await != 0.0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&app, "syncscript_connected_sockets").await, 0.0);
    assert_eq!(metric(&app, "syncscript_joined_rooms").await, 0.0);
    assert!(polling.poll().await.is_err(), "its session is closed");
}

#[tokio::test]
async fn a_socket_whose_session_ended_cannot_write_even_while_still_connected() {
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut socket = app.socket(&owner).await;
    assert_eq!(socket.join(&vault).await["ok"], true);
    // The session goes without its socket being told (as when a disconnect goes astray).
    entities::sessions::Entity::delete_many()
        .exec(app.db())
        .await
        .unwrap();
    let ack = socket
        .emit_ack(
            "source:create",
            json!({ "vaultId": vault, "title": "after logout", "fileUrl": "https://e.org/a.pdf" }),
        )
        .await;
    assert_eq!(ack["error"]["code"], "UNAUTHORIZED", "{ack}");
    let count = entities::sources::Entity::find()
        .all(app.db())
        .await
        .unwrap()
        .len();
    assert_eq!(count, 0, "nothing was written");
    assert!(
        socket.wait_closed(SOON).await,
        "and the socket is disconnected"
    );
}

#[tokio::test]
async fn a_member_removed_while_their_join_replays_is_never_admitted() {
    let app = spawn_app_with(STALLING).await;
    let vault = app.demo_vault().await;
    app.commit_sources(&vault, STALLED_REPLAY, true).await;
    let owner = app.login(OWNER).await;
    let viewer = app.login(VIEWER).await;
    let viewer_id = user_id(&viewer).await;
    let mut socket = SocketClient::connect_small_buffer(app.addr, viewer.cookie_header())
        .await
        .unwrap();
    socket.pause(true);
    let join = socket.emit_with_ack("vault:join", json!({ "vaultId": vault, "since": 0 }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The join read the viewer's role and is replaying; the removal commits meanwhile.
    let removed = owner
        .delete(&format!("/api/vaults/{vault}/members/{viewer_id}"))
        .await;
    assert_eq!(removed.status(), reqwest::StatusCode::NO_CONTENT);
    socket.pause(false);
    let ack = tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    owner.add_source(&vault, "after the removal").await;
    let later = socket.drain(QUIET).await;
    assert!(
        later
            .iter()
            .all(|(_, v)| v["source"]["title"] != "after the removal"),
        "the removed user hears nothing more"
    );
}

#[tokio::test]
async fn a_leave_sent_while_the_join_waits_on_the_database_wins() {
    let app = spawn_app_with(&[("SYNCSCRIPT_DATABASE__MAX_CONNECTIONS", "3")]).await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    let held = app.hold_pool().await;
    let _join = socket.emit_with_ack("vault:join", json!(vault));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        socket.emit_ack("vault:leave", json!(vault)).await,
        json!({ "ok": true })
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    owner.add_source(&vault, "after leaving").await;
    assert!(
        socket.try_expect("source:created", QUIET).await.is_none(),
        "the socket left, and stays out"
    );
}

#[tokio::test]
async fn a_socket_that_disconnects_while_its_join_waits_leaves_no_ghost() {
    let app = spawn_app_with(&[
        ("SYNCSCRIPT_DATABASE__MAX_CONNECTIONS", "3"),
        ("SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL", "50ms"),
    ])
    .await;
    let vault = app.demo_vault().await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    let held = app.hold_pool().await;
    let _join = socket.emit_with_ack("vault:join", json!(vault));
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let owner = app.login(OWNER).await;
    let mut fresh = app.socket(&owner).await;
    assert_eq!(fresh.join(&vault).await["ok"], true);
    let presence = fresh.expect("presence", SOON).await;
    let names: Vec<&str> = presence["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Olivia Owner"], "no ghost of the viewer");
    assert_eq!(metric(&app, "syncscript_joined_rooms").await, 1.0);
}

#[tokio::test]
async fn a_connection_lost_during_the_handshake_gives_its_socket_slot_back() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(&[
        ("SYNCSCRIPT_DATABASE__MAX_CONNECTIONS", "3"),
        ("SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER", "2"),
    ])
    .await;
    let viewer = app.login(VIEWER).await;
    for _ in 0..3 {
        let held = app.hold_pool().await;
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr);
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        req.headers_mut()
            .insert("cookie", viewer.cookie_header().unwrap().parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(Message::text("40")).await.unwrap();
        // The handshake now waits for the database; the client goes away meanwhile.
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(ws);
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(metric(&app, "syncscript_connected_sockets").await, 0.0);
    let first = app.socket(&viewer).await;
    let second = SocketClient::connect(app.addr, viewer.cookie_header(), None).await;
    assert!(
        second.is_ok(),
        "the user's two slots are free: {:?}",
        second.err()
    );
    drop(first);
}
