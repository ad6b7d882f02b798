//! `/api/openapi.json` checked against the contract and against the router it was built with,
//! and `/api/docs` served from the binary. (A real OpenAPI validator and the validation of
//! real responses against the schemas run in the Node suite, `tests/node/openapi.test.mjs`.)
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The routes of CONTRACT §3 and §5.
const CONTRACT_ROUTES: [(&str, &str); 19] = [
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/session"),
    ("get", "/api/vaults"),
    ("post", "/api/vaults"),
    ("get", "/api/vaults/{id}"),
    ("patch", "/api/vaults/{id}"),
    ("delete", "/api/vaults/{id}"),
    ("get", "/api/vaults/{id}/members"),
    ("post", "/api/vaults/{id}/members"),
    ("patch", "/api/vaults/{id}/members/{userId}"),
    ("delete", "/api/vaults/{id}/members/{userId}"),
    ("get", "/api/vaults/{id}/sources"),
    ("post", "/api/vaults/{id}/sources"),
    ("get", "/api/sources/{id}"),
    ("patch", "/api/sources/{id}"),
    ("delete", "/api/sources/{id}"),
    ("get", "/api/vaults/{id}/events"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let resp = app.client().get("/api/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item");
            item.iter()
                .map(move |(method, op)| (method.clone(), path.clone(), op.clone()))
        })
        .collect()
}

/// Follows a `$ref` (or returns the value itself when it is none).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(pointer) => {
            let target = doc.pointer(pointer.trim_start_matches('#'));
            target.unwrap_or_else(|| panic!("dangling $ref {pointer}"))
        }
        None => value,
    }
}

fn every_ref(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push(r.clone());
            }
            map.values().for_each(|v| every_ref(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, refs)),
        _ => {}
    }
}

/// A request to `path` with every `{param}` a fresh UUID, without a session.
async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = path
        .split('/')
        .map(|seg| match seg.starts_with('{') {
            true => uuid::Uuid::new_v4().to_string(),
            false => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/");
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, app.url(&url));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// CONTRACT §2's code for an error status.
fn code_of(status: &str) -> &'static str {
    match status {
        "400" => "VALIDATION_ERROR",
        "401" => "UNAUTHORIZED",
        "403" => "FORBIDDEN",
        "404" => "NOT_FOUND",
        "405" => "METHOD_NOT_ALLOWED",
        "409" => "CONFLICT",
        "413" => "PAYLOAD_TOO_LARGE",
        "415" => "UNSUPPORTED_MEDIA_TYPE",
        "429" => "RATE_LIMITED",
        "500" => "INTERNAL",
        "503" => "UNAVAILABLE",
        other => panic!("CONTRACT §2 has no status {other}"),
    }
}

/// What the app answers when no route matches (poem's 404, in the contract's shape), or when
/// the path has no such method (405).
fn is_router_miss(status: u16, body: &Value) -> bool {
    (status == 404 && body["error"]["message"] == "Not found") || status == 405
}

#[tokio::test]
async fn the_document_lists_exactly_the_contract_routes() {
    let doc = document(&spawn_app().await).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let mut listed: Vec<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let mut expected: Vec<(String, String)> = CONTRACT_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn every_operation_documents_a_success_and_errors_in_the_contract_shape() {
    let doc = document(&spawn_app().await).await;
    let mut refs = Vec::new();
    every_ref(&doc, &mut refs);
    for r in &refs {
        resolve(&doc, &json!({ "$ref": r }));
    }
    let envelope = json!({ "$ref": "#/components/schemas/ErrorEnvelope" });
    let public = ["/api/auth/register", "/api/auth/login"];
    let tags: Vec<&Value> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["name"])
        .collect();
    for (method, path, op) in operations(&doc) {
        let tag = &op["tags"][0];
        assert!(
            tags.contains(&tag),
            "{method} {path} has no declared tag: {tag}"
        );
        let responses = op["responses"].as_object().unwrap();
        let successes = responses.keys().filter(|s| s.starts_with('2')).count();
        assert_eq!(successes, 1, "{method} {path}");
        for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
            let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
            assert_eq!(schema["allOf"][0], envelope, "{method} {path} {status}");
            let code = &schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"];
            assert_eq!(code, &json!([code_of(status)]), "{method} {path} {status}");
        }
        let mut always = vec!["403", "500", "503"];
        if !public.contains(&path.as_str()) {
            always.push("401");
        }
        if op["requestBody"].is_object() {
            always.extend(["400", "413", "415"]);
        }
        for status in always {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
    }
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert_eq!(
        codes.as_array().unwrap().len(),
        11,
        "CONTRACT §2 has eleven codes"
    );
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (method, path, op) in operations(&doc) {
        let body = op["requestBody"].is_object().then(|| json!({}));
        let (status, answer) = call(&app, &method, &path, body).await;
        assert!(
            !is_router_miss(status, &answer),
            "{method} {path} is not routed"
        );
        let documented = op["responses"].get(status.to_string()).is_some();
        assert!(
            documented,
            "{method} {path} answered an undocumented {status}: {answer}"
        );
    }
    // Each path's `Allow` names exactly its documented methods (and HEAD beside GET).
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        let mut allow: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        if allow.iter().any(|m| m == "GET") {
            allow.push("HEAD".into());
        }
        allow.sort();
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let (status, answer, headers) = call_with_headers(&app, method, path).await;
            assert_eq!(status, 405, "{method} {path} is routed but undocumented");
            assert_eq!(answer["error"]["code"], "METHOD_NOT_ALLOWED");
            assert_eq!(headers["allow"], allow.join(", "), "{method} {path}");
        }
    }
}

/// [`call`] without a body, keeping the response's headers.
async fn call_with_headers(
    app: &TestApp,
    method: &str,
    path: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let url = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
    let url = url.replace("{userId}", &uuid::Uuid::new_v4().to_string());
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let resp = reqwest::Client::new()
        .request(method, app.url(&url))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn the_session_scheme_is_named_after_the_configured_cookie() {
    let default = document(&spawn_app().await).await;
    let scheme = &default["components"]["securitySchemes"]["session"];
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "syncscript.session-token");
    assert_eq!(default["security"], json!([{ "session": [] }]));
    let app = spawn_app_with(&[("SYNCSCRIPT_SESSION__COOKIE_NAME", "vault-sid")]).await;
    let renamed = document(&app).await;
    assert_eq!(
        renamed["components"]["securitySchemes"]["session"]["name"],
        "vault-sid"
    );
}

#[tokio::test]
async fn the_docs_page_and_everything_it_loads_come_from_the_binary() {
    let app = spawn_app().await;
    let client = app.client();
    let page = client.get("/api/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    let links: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with('/') || s.contains("://"))
        .collect();
    assert!(
        links.contains(&"/api/docs/assets/swagger-ui-bundle.js"),
        "{html}"
    );
    for link in links {
        assert!(link.starts_with('/'), "the page links elsewhere: {link}");
        assert_eq!(client.get(link).await.status(), StatusCode::OK, "{link}");
    }
    let script = client
        .get("/api/docs/assets/docs.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(script.contains("url: '/api/openapi.json'") && script.contains("validatorUrl: null"));
    let missing = client.get("/api/docs/assets/nope.js").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
