//! Serving HTTP (`src/serve.rs`): HTTP/1.1 and HTTP/2 by prior knowledge on one port, a
//! stop that waits for requests in flight, never for a connection that sent nothing or sits
//! idle between requests, and `server.header_timeout` for a connection that withholds or
//! trickles its request head.
use std::time::Duration;

use reqwest::{StatusCode, Version};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

#[tokio::test]
async fn http_1_1_and_http_2_by_prior_knowledge_are_both_served() {
    let app = spawn_app().await;
    let url = format!("http://{}/healthz", app.addr);

    let h1 = reqwest::Client::new().get(&url).send().await.unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();

    assert_eq!(
        (h1.status(), h1.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
    assert_eq!(
        (h2.status(), h2.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
}

/// Reads the answer to the request sent on `conn`, a 200.
async fn answered_ok(conn: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}

/// A keep-alive connection that made one request, answered, and now sits idle.
async fn idle_after_a_request(addr: std::net::SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    answered_ok(&mut conn).await;
    conn
}

/// Whether the server closed `conn`: it reads the end of the stream (or a reset).
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_stop_closes_connections_that_sent_nothing_or_sit_idle_without_waiting_for_them() {
    let mut app = spawn_app_with(&[
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "1s"),
        ("SYNCSCRIPT_SERVER__SHUTDOWN_TIMEOUT", "10min"),
    ])
    .await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut idle = idle_after_a_request(app.addr).await;

    app.state.drain.begin();

    // Within 20 s: far less than the ten minutes of `shutdown_timeout` the two connections
    // could hold it.
    assert!(
        app.server_ended().await.is_ok(),
        "the server stops once its drain is done"
    );
    assert!(closed_by_server(&mut silent).await);
    assert!(closed_by_server(&mut idle).await);
}

#[tokio::test]
async fn a_connection_without_a_whole_request_head_within_the_header_timeout_is_closed() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__HEADER_TIMEOUT", "1s")]).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut trickling = TcpStream::connect(app.addr).await.unwrap();
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut idle = idle_after_a_request(app.addr).await;

    // `closed_by_server` waits up to 10 s, against a timeout of 1 s.
    assert!(closed_by_server(&mut silent).await, "silent");
    assert!(closed_by_server(&mut trickling).await, "trickling");
    assert!(closed_by_server(&mut idle).await, "idle after a response");
}

#[tokio::test]
async fn a_request_head_that_arrives_in_pieces_within_the_header_timeout_is_answered() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__HEADER_TIMEOUT", "5s")]).await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(b"Host: test\r\n\r\n").await.unwrap();

    answered_ok(&mut conn).await;
}
