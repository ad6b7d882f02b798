//! The REST calls the bench makes: sign-in, the Demo Vault, commits (a new source), the event
//! log and a few `/metrics` lines.
use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::server::die;

pub const PASSWORD: &str = "demo-password";
pub const COOKIE_NAME: &str = "syncscript.session-token";

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_string)
}

/// Signs in; returns the `name=token` cookie pair.
pub async fn login(http: &reqwest::Client, base: &str, email: &str) -> String {
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap_or_else(|e| die(&format!("login request: {e}")));
    if resp.status() != 200 {
        die(&format!("login as {email}: {}", resp.status()));
    }
    session_cookie(&resp).unwrap_or_else(|| die("login set no session cookie"))
}

/// Registers a user; returns the cookie pair.
pub async fn register(http: &reqwest::Client, base: &str, email: &str, name: &str) -> String {
    let resp = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({ "email": email, "name": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap_or_else(|e| die(&format!("register request: {e}")));
    if resp.status() != 201 {
        let body = resp.text().await.unwrap_or_default();
        die(&format!("register {email}: {body}"));
    }
    session_cookie(&resp).unwrap_or_else(|| die("register set no session cookie"))
}

pub async fn demo_vault(http: &reqwest::Client, base: &str, cookie: &str) -> String {
    let body = get_json(http, &format!("{base}/api/vaults"), cookie).await;
    body["vaults"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "Demo Vault"))
        .and_then(|v| v["id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| die(&format!("no Demo Vault in {body}")))
}

async fn get_json(http: &reqwest::Client, url: &str, cookie: &str) -> Value {
    let resp = http.get(url).header("cookie", cookie).send().await;
    let resp = resp.unwrap_or_else(|e| die(&format!("GET {url}: {e}")));
    resp.json()
        .await
        .unwrap_or_else(|e| die(&format!("GET {url} body: {e}")))
}

/// Who commits, where: one owner session, the vault, and the nodes' base URLs.
#[derive(Clone)]
pub struct Writer {
    pub http: reqwest::Client,
    pub bases: Vec<String>,
    pub cookie: String,
    pub vault: String,
}

impl Writer {
    /// A commit: POST a source through node `node`.
    pub async fn post(&self, node: usize, title: &str) -> Result<(), String> {
        let base = &self.bases[node % self.bases.len()];
        post_source(&self.http, base, &self.cookie, &self.vault, title).await
    }

    pub async fn latest_seq(&self) -> i64 {
        let url = format!("{}/api/vaults/{}/events?limit=1", self.bases[0], self.vault);
        let body = get_json(&self.http, &url, &self.cookie).await;
        body["latestSeq"].as_i64().unwrap_or(0)
    }

    /// (seq, source title) of every `source:created` after `since`, oldest first.
    pub async fn titles_since(&self, mut since: i64) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        loop {
            let url = format!(
                "{}/api/vaults/{}/events?since={since}&limit=1000",
                self.bases[0], self.vault
            );
            let body = get_json(&self.http, &url, &self.cookie).await;
            let events = body["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return out;
            }
            for e in &events {
                let seq = e["seq"].as_i64().unwrap_or(0);
                since = since.max(seq);
                if let Some(title) = e["source"]["title"].as_str() {
                    out.push((seq, title.to_string()));
                }
            }
        }
    }
}

/// A commit: POST a source into `vault`; Err with the status and body unless 201.
pub async fn post_source(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    vault: &str,
    title: &str,
) -> Result<(), String> {
    let resp = http
        .post(format!("{base}/api/vaults/{vault}/sources"))
        .header("cookie", cookie)
        .json(&json!({ "title": title, "fileUrl": "https://example.com/a.pdf" }))
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    if status != 201 {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("{status} {body:.100}"));
    }
    Ok(())
}

/// Selected `/metrics` values (name with labels → value).
pub async fn metrics(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("bucket"))
        .filter(|l| {
            // This project's names, the Node peer's, and any replay / history-read counters.
            [
                "sockets",
                "socket_connections",
                "rooms",
                "events_published",
                "fanout_seconds",
                "replay",
                "history",
                "log_read",
                "join_access_reads",
                "db_pool",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The server's connected-socket gauge.
pub async fn connected_sockets(http: &reqwest::Client, base: &str) -> f64 {
    metrics(http, base)
        .await
        .iter()
        .find(|(k, _)| k.contains("connected_sockets") || k.contains("socket_connections"))
        .map_or(0.0, |(_, v)| *v)
}
