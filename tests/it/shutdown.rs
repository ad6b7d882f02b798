//! The binary's signals (CONTRACT §1): SIGTERM drains the node and it exits 0; a second
//! SIGTERM ends the drain at once.
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

const COOKIE: &str = "syncscript.session-token";

fn signal(node: &BinaryNode, name: &str) {
    let pid = node.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args([format!("-{name}"), pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

async fn signed_in_socket(node: &BinaryNode) -> SocketClient {
    let client = node.client(COOKIE);
    assert_eq!(client.login(OWNER, PASSWORD).await.status(), StatusCode::OK);
    SocketClient::connect(node.addr, client.cookie_header(), None)
        .await
        .expect("socket connects")
}

async fn exit_code(node: &mut BinaryNode, within: Duration) -> Option<i32> {
    tokio::time::timeout(within, node.child.wait())
        .await
        .expect("the process exits")
        .unwrap()
        .code()
}

#[tokio::test]
async fn sigterm_drains_the_sockets_at_the_transport_and_exits_zero() {
    let (db_url, _dir) = fresh_database().await;
    let env = [
        ("SYNCSCRIPT_DEMO__SEED", "true"),
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "2s"),
    ];
    let mut node = BinaryNode::start(&db_url, &env).await;
    let socket = signed_in_socket(&node).await;

    signal(&node, "TERM");

    assert!(socket.wait_closed(Duration::from_secs(15)).await);
    assert!(socket.closed_at_transport(), "{:?}", socket.frames());
    assert_eq!(exit_code(&mut node, Duration::from_secs(20)).await, Some(0));
}

#[tokio::test]
async fn a_second_sigterm_ends_the_drain_at_once() {
    let (db_url, _dir) = fresh_database().await;
    let env = [
        ("SYNCSCRIPT_DEMO__SEED", "true"),
        ("SYNCSCRIPT_SERVER__DRAIN_PERIOD", "5min"),
        ("SYNCSCRIPT_SERVER__SHUTDOWN_TIMEOUT", "10min"),
    ];
    let mut node = BinaryNode::start(&db_url, &env).await;
    let socket = signed_in_socket(&node).await;
    signal(&node, "TERM");
    let readyz = format!("http://{}/readyz", node.addr);
    for _ in 0..200 {
        let status = reqwest::get(&readyz).await.map(|r| r.status());
        if status.is_ok_and(|s| s == StatusCode::SERVICE_UNAVAILABLE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!socket.is_closed.load(std::sync::atomic::Ordering::SeqCst));

    signal(&node, "TERM");

    // Far less than the five minutes the drain would take.
    assert_eq!(exit_code(&mut node, Duration::from_secs(30)).await, Some(0));
    assert!(socket.wait_closed(Duration::from_secs(5)).await);
}
