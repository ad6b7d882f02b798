//! Accounts and cookie sessions (CONTRACT §3), and the request hygiene every route shares.
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn register_login_session_and_logout_work_end_to_end() {
    let app = spawn_app().await;
    let client = app.client();
    let resp = client
        .post(
            "/api/auth/register",
            json!({ "email": "Ada@Example.org", "name": "Ada", "password": "correct horse" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let user = resp.json::<Value>().await.unwrap()["user"].clone();
    assert_eq!(user["email"], "ada@example.org");
    assert_eq!(
        user.as_object().unwrap().len(),
        3,
        "user is {{id, email, name}}: {user}"
    );

    let session: Value = client.get("/api/auth/session").await.json().await.unwrap();
    assert_eq!(session["user"]["id"], user["id"]);
    assert!(
        session["expiresAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    assert_eq!(client.logout().await.status(), StatusCode::NO_CONTENT);
    let err = error_of(
        client.get("/api/auth/session").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(err["code"], "UNAUTHORIZED");

    let again = app.client();
    assert_eq!(
        again
            .login("ADA@example.org", "correct horse")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        again.get("/api/auth/session").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_duplicate_email_in_any_case_is_a_conflict() {
    let app = spawn_app().await;
    let resp = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "OWNER@demo.com", "name": "X", "password": "12345678" }),
        )
        .await;
    assert_eq!(
        error_of(resp, StatusCode::CONFLICT).await["code"],
        "CONFLICT"
    );
}

#[tokio::test]
async fn registration_validates_every_field_and_can_be_closed() {
    let app = spawn_app().await;
    let resp = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "nope", "name": " ", "password": "short" }),
        )
        .await;
    let err = error_of(resp, StatusCode::BAD_REQUEST).await;
    let fields: Vec<&str> = err["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "password"]);
    let long = "x".repeat(257);
    let resp = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "a@b.co", "name": "A", "password": long }),
        )
        .await;
    assert_eq!(
        error_of(resp, StatusCode::BAD_REQUEST).await["details"][0]["field"],
        "password"
    );

    let closed = spawn_app_with(&[("SYNCSCRIPT_AUTH__ALLOW_REGISTRATION", "false")]).await;
    let resp = closed
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "a@b.co", "name": "A", "password": "12345678" }),
        )
        .await;
    assert_eq!(
        error_of(resp, StatusCode::FORBIDDEN).await["code"],
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_identical_401() {
    let app = spawn_app().await;
    let wrong = app.client().login(OWNER, "not-the-password").await;
    let unknown = app
        .client()
        .login("nobody@demo.com", "not-the-password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
}

#[tokio::test]
async fn the_sixth_rapid_failure_is_rate_limited_with_retry_after() {
    let app = spawn_app().await;
    let client = app.client();
    for _ in 0..5 {
        assert_eq!(
            client.login(VIEWER, "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = client.login(VIEWER, "wrong-password").await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60 + 1);
    assert_eq!(
        error_of(resp, StatusCode::TOO_MANY_REQUESTS).await["code"],
        "RATE_LIMITED"
    );
    // Even the right password waits out the lockout.
    assert_eq!(
        client.login(VIEWER, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Five failed logins, each for another unknown email, from `forwarded_for`.
async fn fail_five_times_from(client: &Client, forwarded_for: &str) {
    for i in 0..5 {
        assert_eq!(
            login_from(client, forwarded_for, &format!("nobody{i}@example.com")).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

async fn login_from(client: &Client, forwarded_for: &str, email: &str) -> StatusCode {
    client
        .http
        .post(format!("{}/api/auth/login", client.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "email": email, "password": "wrong-password" }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]")]).await;
    let client = app.client();
    fail_five_times_from(&client, "203.0.113.7").await;
    assert_eq!(
        login_from(&client, "203.0.113.7", "someone@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not locked out.
    assert_eq!(
        login_from(&client, "203.0.113.8", "someone@example.com").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_ipv6_client_is_throttled_per_64_network() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]")]).await;
    let client = app.client();
    for i in 0..5 {
        let from = format!("2001:db8:1:2::{i:x}");
        let email = format!("nobody{i}@example.com");
        assert_eq!(
            login_from(&client, &from, &email).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&client, "2001:db8:1:2:ffff::9", "someone@example.com").await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address of the same /64"
    );
    assert_eq!(
        login_from(&client, "2001:db8:1:3::1", "someone@example.com").await,
        StatusCode::UNAUTHORIZED,
        "another network"
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_for_cannot_dodge_the_throttle() {
    let app = spawn_app().await;
    let client = app.client();
    fail_five_times_from(&client, "203.0.113.7").await;
    assert_eq!(
        login_from(&client, "203.0.113.8", "someone@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_cookie_has_the_contract_attributes_and_a_fresh_token_per_login() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SESSION__SECURE", "true")]).await;
    let client = app.client();
    let first = client.login(OWNER, PASSWORD).await;
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("syncscript.session-token="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(token.len() >= 32, "at least 128 bits");
    let second = client.login(OWNER, PASSWORD).await;
    let token2 = second.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert_ne!(token, token2);
    // Only a hash of the token is stored.
    let rows = entities::sessions::Entity::find()
        .all(app.db())
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|s| s.token_hash != token && s.token_hash.len() == 64)
    );
}

#[tokio::test]
async fn a_custom_cookie_name_works_over_http_and_the_socket_handshake() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SESSION__COOKIE_NAME", "vault_sid")]).await;
    let client = app.client();
    let resp = client.login(OWNER, PASSWORD).await;
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("vault_sid=")
    );
    assert_eq!(
        client.get("/api/auth/session").await.status(),
        StatusCode::OK
    );
    let mut socket = app.socket(&client).await;
    assert_eq!(socket.join(&app.demo_vault().await).await["ok"], true);
    // The default name means nothing to this server.
    let stale = client
        .cookie_header()
        .unwrap()
        .replace("vault_sid=", "syncscript.session-token=");
    let refused = SocketClient::connect(app.addr, Some(stale), None).await;
    assert!(matches!(refused, Err(ConnectError::Refused(m)) if m == "UNAUTHORIZED"));
}

#[tokio::test]
async fn expired_and_revoked_sessions_are_refused_over_http_and_sockets() {
    let app = spawn_app().await;
    let expired = app.login(OWNER).await;
    app.expire_all_sessions().await;
    assert_eq!(
        expired.get("/api/auth/session").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = SocketClient::connect(app.addr, expired.cookie_header(), None).await;
    assert!(matches!(refused, Err(ConnectError::Refused(m)) if m == "UNAUTHORIZED"));

    let revoked = app.login(VIEWER).await;
    let cookie = revoked.cookie_header();
    assert_eq!(revoked.logout().await.status(), StatusCode::NO_CONTENT);
    let replayed = app.client();
    let resp = replayed
        .http
        .get(app.url("/api/auth/session"))
        .header("cookie", cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refused = SocketClient::connect(app.addr, cookie, None).await;
    assert!(matches!(refused, Err(ConnectError::Refused(m)) if m == "UNAUTHORIZED"));
    let anonymous = SocketClient::connect(app.addr, None, None).await;
    assert!(matches!(anonymous, Err(ConnectError::Refused(m)) if m == "UNAUTHORIZED"));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_http_and_both_socket_transports() {
    let app = spawn_app_with(&[(
        "SYNCSCRIPT_SERVER__ALLOWED_ORIGINS",
        "[\"https://app.example.com\"]",
    )])
    .await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let post = |origin: &'static str| {
        owner
            .http
            .post(app.url(&format!("/api/vaults/{vault}/sources")))
            .header("origin", origin)
            .json(&json!({ "title": "T", "fileUrl": "https://e.org/a.pdf" }))
            .send()
    };
    let err = error_of(
        post("https://evil.example").await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(err["code"], "FORBIDDEN");
    let own: &'static str = Box::leak(format!("http://{}", app.addr).into_boxed_str());
    assert_eq!(post(own).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(
        post("https://app.example.com").await.unwrap().status(),
        StatusCode::CREATED
    );
    // Several Origin headers: every one must be allowed.
    let two = owner
        .http
        .get(app.url("/api/vaults"))
        .header("origin", own)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), StatusCode::FORBIDDEN);

    let ws = SocketClient::connect(
        app.addr,
        owner.cookie_header(),
        Some("https://evil.example"),
    )
    .await;
    assert!(matches!(ws, Err(ConnectError::Refused(m)) if m == "FORBIDDEN"));
    let (_, reply) =
        polling_connect(&app, owner.cookie_header(), Some("https://evil.example")).await;
    assert!(
        reply.starts_with("44"),
        "polling handshake refused: {reply}"
    );
    assert!(
        SocketClient::connect(app.addr, owner.cookie_header(), Some(own))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bodies_must_be_json_within_the_limit_and_well_formed() {
    let app = spawn_app_with(&[("SYNCSCRIPT_SERVER__MAX_BODY_BYTES", "2048")]).await;
    let owner = app.login(OWNER).await;
    let url = app.url("/api/vaults");
    let resp = owner
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await["code"],
        "UNSUPPORTED_MEDIA_TYPE"
    );
    let big = json!({ "name": "x".repeat(4096) }).to_string();
    let resp = owner
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "PAYLOAD_TOO_LARGE"
    );
    let resp = owner
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let err = error_of(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["code"], "VALIDATION_ERROR");
    assert_eq!(err["message"], "Malformed JSON");
}

#[tokio::test]
async fn no_response_ever_contains_a_password_hash() {
    let app = spawn_app().await;
    let client = app.client();
    let mut bodies = Vec::new();
    bodies.push(
        client
            .post(
                "/api/auth/register",
                json!({ "email": "h@h.io", "name": "H", "password": "12345678" }),
            )
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        client
            .login("h@h.io", "12345678")
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(client.get("/api/auth/session").await.text().await.unwrap());
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    bodies.push(
        owner
            .get(&format!("/api/vaults/{vault}/members"))
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        owner
            .post(
                &format!("/api/vaults/{vault}/members"),
                json!({ "email": "h@h.io", "role": "viewer" }),
            )
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        owner
            .get(&format!("/api/vaults/{vault}/events"))
            .await
            .text()
            .await
            .unwrap(),
    );
    for body in bodies {
        assert!(
            !body.contains("argon2") && !body.to_lowercase().contains("password"),
            "{body}"
        );
    }
}
