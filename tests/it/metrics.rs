//! Operator metrics on `/metrics`: they exist and move with what they count.
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

/// A sample's value: `name` is the metric with its labels, as rendered (`-1` when absent).
async fn sample(app: &TestApp, name: &str) -> f64 {
    let text = app.client().get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

async fn until_sample(app: &TestApp, name: &str, wanted: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = sample(app, name).await;
        if value == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {value}, not {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn http_durations_are_labelled_by_route_template_and_status_class() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    owner.get("/api/vaults").await;
    let missing = uuid::Uuid::new_v4();
    owner.get(&format!("/api/vaults/{missing}")).await;
    owner.get("/no/such/page").await;

    let count = |route: &str, class: &str| {
        format!(
            "syncscript_http_request_duration_seconds_count{{route=\"{route}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(sample(&app, &count("/api/vaults", "2xx")).await, 1.0);
    assert_eq!(sample(&app, &count("/api/vaults/:id", "4xx")).await, 1.0);
    assert_eq!(sample(&app, &count("/api/auth/login", "2xx")).await, 1.0);
    assert_eq!(sample(&app, &count("unmatched", "4xx")).await, 1.0);
}

#[tokio::test]
async fn the_realtime_and_pool_metrics_move() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut socket = app.socket(&owner).await;
    assert_eq!(sample(&app, "syncscript_open_rooms").await, 0.0);
    let ack = socket
        .emit_ack("vault:join", json!({ "vaultId": vault, "since": 999 }))
        .await;
    assert_eq!(ack["resync"], true);
    assert_eq!(sample(&app, "syncscript_open_rooms").await, 1.0);
    assert_eq!(sample(&app, "syncscript_resyncs_total").await, 1.0);

    assert_eq!(sample(&app, "syncscript_bus_lag_seconds_count").await, 0.0);
    owner.add_source(&vault, "measured").await;
    socket
        .expect("source:created", Duration::from_secs(5))
        .await;
    assert_eq!(sample(&app, "syncscript_bus_lag_seconds_count").await, 1.0);

    let max = sample(&app, "syncscript_db_pool_connections_max").await;
    assert_eq!(max, app.state.settings.database.max_connections as f64);
    let held = app.hold_pool().await;
    let in_use = sample(&app, "syncscript_db_pool_connections_in_use").await;
    assert!(in_use >= 1.0, "connections held are in use: {in_use}");
    drop(held);
    assert_eq!(
        sample(&app, "syncscript_bus_listener_reconnects_total").await,
        0.0
    );
    let timeouts = sample(&app, "syncscript_db_pool_timeouts_total").await;
    assert!(
        timeouts >= 0.0,
        "the pool's timeouts are counted: {timeouts}"
    );
}

#[tokio::test]
async fn the_drain_gauges_flip_when_draining_begins() {
    let app = spawn_app_with(&[
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "30s"),
        ("SYNCSCRIPT_SERVER__SHUTDOWN_TIMEOUT", "60s"),
    ])
    .await;
    let owner = app.login(OWNER).await;
    let _sockets = [app.socket(&owner).await, app.socket(&owner).await];
    assert_eq!(sample(&app, "syncscript_draining").await, 0.0);

    app.state.drain.begin();

    until_sample(&app, "syncscript_draining", 1.0).await;
    until_sample(&app, "syncscript_draining_sockets", 2.0).await;
}
