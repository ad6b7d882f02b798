//! Where the server and its OpenAPI document disagreed under a property-based tester
//! (Schemathesis, run in `tests/node/schemathesis.test.mjs`), pinned here at their edges: a
//! wrong method, an integral float, the cursor, blank names, non-object bodies, IRIs.
use regex::Regex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    app.client()
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .unwrap()
}

/// The `pattern` the document gives a property of a component schema.
fn pattern(doc: &Value, schema: &str, property: &str) -> Regex {
    let pointer = format!("/components/schemas/{schema}/properties/{property}/pattern");
    let found = doc.pointer(&pointer).and_then(Value::as_str);
    Regex::new(found.unwrap_or_else(|| panic!("{pointer} is missing"))).unwrap()
}

#[tokio::test]
async fn a_method_a_known_path_does_not_have_is_405_with_allow_and_the_contract_body() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let cases = [
        ("TRACE", "/api/auth/login".to_string(), "POST"),
        ("GET", "/api/auth/logout".to_string(), "POST"),
        ("PUT", "/api/vaults".to_string(), "GET, HEAD, POST"),
        (
            "POST",
            format!("/api/vaults/{vault}"),
            "DELETE, GET, HEAD, PATCH",
        ),
        ("DELETE", "/api/openapi.json".to_string(), "GET, HEAD"),
        ("POST", "/healthz".to_string(), "GET, HEAD"),
        ("PUT", "/metrics".to_string(), "GET, HEAD"),
        ("DELETE", "/login".to_string(), "GET, HEAD"),
        ("POST", "/api/docs".to_string(), "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let resp = owner
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let error = error_of(resp, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(error["code"], "METHOD_NOT_ALLOWED", "{method} {path}");
    }
    // Routing by method comes before the session check, and HEAD still answers where GET does.
    let anonymous = reqwest::Client::new();
    let resp = anonymous.put(app.url("/api/vaults")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = anonymous.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = anonymous.put(app.url("/api/nowhere")).send().await.unwrap();
    assert_eq!(
        error_of(resp, StatusCode::NOT_FOUND).await["code"],
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn an_integral_float_version_is_that_integer_and_a_fraction_names_the_field() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let source = owner.add_source(&app.demo_vault().await, "Paper").await;
    let path = format!("/api/sources/{}", source["id"].as_str().unwrap());
    let resp = owner
        .patch(&path, json!({ "title": "Renamed", "version": 1.0 }))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stale = owner
        .patch(&path, json!({ "title": "Again", "version": 1.0 }))
        .await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let resp = owner
        .patch(&path, json!({ "title": "Again", "version": 2.5 }))
        .await;
    let error = error_of(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["code"], "VALIDATION_ERROR");
    assert_eq!(error["details"][0]["field"], "version");
    assert!(
        !error["message"].as_str().unwrap().contains("i32"),
        "{error}"
    );
}

#[tokio::test]
async fn the_server_takes_exactly_the_cursors_the_documented_pattern_allows() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    for title in ["One", "Two", "Three"] {
        owner.add_source(&vault, title).await;
    }
    let doc = document(&app).await;
    let params = doc["paths"]["/api/vaults/{id}/sources"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let cursor = params.iter().find(|p| p["name"] == "cursor").unwrap();
    let documented = Regex::new(cursor["schema"]["pattern"].as_str().unwrap()).unwrap();
    let list = |cursor: String| {
        let path = format!("/api/vaults/{vault}/sources?limit=1&cursor={cursor}");
        let owner = &owner;
        async move { owner.get(&path).await }
    };
    let page: Value = list(String::new()).await.json().await.unwrap();
    let issued = page["nextCursor"].as_str().unwrap().to_string();
    let eighteen_nines = format!("73{}", "39".repeat(18));
    let nineteen_nines = format!("73{}", "39".repeat(19));
    let samples = [
        issued.as_str(),
        "",
        "7330",
        &eighteen_nines,
        &nineteen_nines,
        "73",
        "732d31",
        "732b31",
        "7431",
        "zz",
        "any string",
    ];
    for sample in samples {
        let resp = list(sample.replace(' ', "%20")).await;
        let accepted = resp.status() == StatusCode::OK;
        assert_eq!(accepted, documented.is_match(sample), "cursor {sample:?}");
        if !accepted {
            let error = error_of(resp, StatusCode::BAD_REQUEST).await;
            assert_eq!(error["details"][0]["field"], "cursor");
        }
    }
}

#[tokio::test]
async fn a_name_the_document_allows_is_one_the_server_accepts() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let doc = document(&app).await;
    let not_blank = pattern(&doc, "CreateVault", "name");
    for schema in ["PatchVault", "Register"] {
        assert_eq!(pattern(&doc, schema, "name").as_str(), not_blank.as_str());
    }
    for schema in ["CreateSource", "PatchSource"] {
        assert_eq!(pattern(&doc, schema, "title").as_str(), not_blank.as_str());
    }
    // Every character the server trims as white space, some it keeps, mixtures, and U+0000.
    let names = [
        " ",
        "\t\n",
        "\u{b}\u{c}\r",
        "\u{85}",
        "\u{a0}",
        "\u{1680}",
        "\u{2000}\u{200a}",
        "\u{2028}\u{2029}",
        "\u{202f}\u{205f}\u{3000}",
        "\u{feff}",
        "\u{1c}",
        "\u{200b}",
        " a ",
        "x",
        "a\u{0}b",
        "\u{0}",
    ];
    for name in names {
        let resp = owner.post("/api/vaults", json!({ "name": name })).await;
        let accepted = resp.status() == StatusCode::CREATED;
        assert_eq!(accepted, not_blank.is_match(name), "name {name:?}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    for body in [
        json!([null, null]),
        json!(["Renamed"]),
        json!("Renamed"),
        json!(7),
    ] {
        let resp = owner
            .patch(&format!("/api/vaults/{vault}"), body.clone())
            .await;
        let error = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(error["details"][0]["field"], "body", "{body}");
    }
}

#[tokio::test]
async fn a_file_url_must_be_a_uri_as_the_document_says() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let documented = pattern(&document(&app).await, "CreateSource", "fileUrl");
    for url in [
        "https://example.com/a%20b.pdf?x=1#p",
        "http://[::1]:8080/a",
        "https://\u{cf}",
        "https://example.com/\u{e9}",
        "https://example.com/a b",
        "https://example.com/%zz",
        "HTTPS://example.com/",
    ] {
        let body = json!({ "title": "Paper", "fileUrl": url });
        let resp = owner
            .post(&format!("/api/vaults/{vault}/sources"), body)
            .await;
        let accepted = resp.status() == StatusCode::CREATED;
        assert_eq!(accepted, documented.is_match(url), "fileUrl {url:?}");
    }
}

#[tokio::test]
async fn text_with_u0000_is_invalid_input_and_never_an_internal_error() {
    // PostgreSQL's text cannot hold U+0000: on it these were 500s; on SQLite, stored as sent.
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let nul = "a\u{0}b";
    let members = format!("/api/vaults/{vault}/members");
    let sources = format!("/api/vaults/{vault}/sources");
    let password = "a-long-password";
    let refused = [
        (
            "/api/auth/register",
            json!({ "email": "n@example.com", "name": nul, "password": password }),
        ),
        (
            "/api/auth/register",
            json!({ "email": "a\u{0}@example.com", "name": "N", "password": password }),
        ),
        ("/api/vaults", json!({ "name": "V", "description": nul })),
        (
            &members,
            json!({ "email": "a\u{0}@demo.com", "role": "viewer" }),
        ),
        (
            &sources,
            json!({ "title": nul, "fileUrl": "https://example.com/" }),
        ),
    ];
    for (path, body) in refused {
        let resp = owner.post(path, body.clone()).await;
        let error = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(error["code"], "VALIDATION_ERROR", "{path} {body}");
    }
    let login = app
        .client()
        .login("owner\u{0}@demo.com", "demo-password")
        .await;
    assert_eq!(
        error_of(login, StatusCode::UNAUTHORIZED).await["code"],
        "UNAUTHORIZED"
    );
    let doc = document(&app).await;
    assert!(!pattern(&doc, "CreateVault", "description").is_match(nul));
}

#[tokio::test]
async fn every_documented_link_names_an_operation_and_its_parameters() {
    let doc = document(&spawn_app().await).await;
    let mut operations = std::collections::HashMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let params: Vec<&str> = op["parameters"].as_array().map_or(vec![], |ps| {
                ps.iter().map(|p| p["name"].as_str().unwrap()).collect()
            });
            operations.insert(op["operationId"].as_str().unwrap().to_string(), params);
        }
    }
    let mut links = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                links.extend(response["links"].as_object().into_iter().flatten());
            }
        }
    }
    // Adding a member leads to changing its role and removing it.
    assert!(links.len() >= 2, "{links:?}");
    for (name, link) in links {
        let params = &operations[link["operationId"].as_str().unwrap()];
        for (param, value) in link["parameters"].as_object().unwrap() {
            assert!(params.contains(&param.as_str()), "{name}: {param}");
            assert!(value.as_str().unwrap().starts_with('$'), "{name}: {value}");
        }
    }
}
