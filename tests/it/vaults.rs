//! The vault REST API: the permission matrix of CONTRACT §4, vaults themselves, the OpenAPI
//! document.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

struct Case {
    method: Method,
    path: &'static str,
    body: Value,
    /// Expected status for owner, contributor, viewer, outsider.
    expect: [u16; 4],
}

fn case(method: Method, path: &'static str, body: Value, expect: [u16; 4]) -> Case {
    Case {
        method,
        path,
        body,
        expect,
    }
}

#[tokio::test]
async fn every_route_enforces_the_permission_matrix() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let users = [
        app.login(OWNER).await,
        app.login(CONTRIBUTOR).await,
        app.login(VIEWER).await,
        app.login(OUTSIDER).await,
    ];
    let owner = &users[0];
    let extra = app.client();
    extra
        .post(
            "/api/auth/register",
            json!({ "email": "extra@demo.com", "name": "Extra", "password": "12345678" }),
        )
        .await;
    let extra_id = extra
        .get("/api/auth/session")
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    use Method::*;
    let cases = [
        case(
            Get,
            "/api/vaults/{vault}",
            Value::Null,
            [200, 200, 200, 404],
        ),
        case(
            Patch,
            "/api/vaults/{vault}",
            json!({ "name": "Renamed" }),
            [200, 403, 403, 404],
        ),
        case(
            Get,
            "/api/vaults/{vault}/members",
            Value::Null,
            [200, 200, 200, 404],
        ),
        case(
            Post,
            "/api/vaults/{vault}/members",
            json!({ "email": "extra@demo.com", "role": "viewer" }),
            [201, 403, 403, 404],
        ),
        case(
            Patch,
            "/api/vaults/{vault}/members/{extra}",
            json!({ "role": "contributor" }),
            [200, 403, 403, 404],
        ),
        case(
            Delete,
            "/api/vaults/{vault}/members/{extra}",
            Value::Null,
            [204, 403, 403, 404],
        ),
        case(
            Get,
            "/api/vaults/{vault}/sources",
            Value::Null,
            [200, 200, 200, 404],
        ),
        case(
            Post,
            "/api/vaults/{vault}/sources",
            json!({ "title": "T", "fileUrl": "https://e.org/t.pdf" }),
            [201, 201, 403, 404],
        ),
        case(
            Get,
            "/api/sources/{source}",
            Value::Null,
            [200, 200, 200, 404],
        ),
        case(
            Patch,
            "/api/sources/{source}",
            json!({ "title": "New" }),
            [200, 200, 403, 404],
        ),
        case(
            Delete,
            "/api/sources/{source}",
            Value::Null,
            [204, 204, 403, 404],
        ),
        case(
            Get,
            "/api/vaults/{vault}/events",
            Value::Null,
            [200, 200, 200, 404],
        ),
        case(
            Delete,
            "/api/vaults/{vault}",
            Value::Null,
            [204, 403, 403, 404],
        ),
    ];
    for c in cases {
        // The owner goes last, so a destructive route has not already run for the others.
        for who in [3, 2, 1, 0] {
            let source = owner.add_source(&vault, "fixture").await["id"]
                .as_str()
                .unwrap()
                .to_string();
            let path = c
                .path
                .replace("{vault}", &vault)
                .replace("{extra}", &extra_id)
                .replace("{source}", &source);
            let client = &users[who];
            let resp = match c.method {
                Get => client.get(&path).await,
                Post => client.post(&path, c.body.clone()).await,
                Patch => client.patch(&path, c.body.clone()).await,
                Delete => client.delete(&path).await,
            };
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            assert_eq!(status, c.expect[who], "{} as user #{who}: {body}", c.path);
            if status >= 400 {
                let err: Value = serde_json::from_str(&body).unwrap();
                let code = match status {
                    403 => "FORBIDDEN",
                    404 => "NOT_FOUND",
                    _ => "?",
                };
                assert_eq!(err["error"]["code"], code);
            }
        }
    }
}

#[tokio::test]
async fn a_vault_is_created_listed_renamed_and_deleted() {
    let app = spawn_app().await;
    let ada = app.login(OWNER).await;
    let resp = ada
        .post(
            "/api/vaults",
            json!({ "name": "  Thesis  ", "description": "chapter sources" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let vault = resp.json::<Value>().await.unwrap()["vault"].clone();
    assert_eq!(vault["name"], "Thesis");
    let id = vault["id"].as_str().unwrap();
    let list: Value = ada.get("/api/vaults").await.json().await.unwrap();
    let mine = list["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(mine["role"], "owner");
    for key in [
        "id",
        "name",
        "description",
        "role",
        "createdAt",
        "updatedAt",
    ] {
        assert!(mine.get(key).is_some(), "{key}");
    }
    let got: Value = ada
        .get(&format!("/api/vaults/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (got["role"].as_str(), got["vault"]["description"].as_str()),
        (Some("owner"), Some("chapter sources"))
    );
    let renamed: Value = ada
        .patch(&format!("/api/vaults/{id}"), json!({ "name": "Thesis II" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["vault"]["name"], "Thesis II");
    ada.add_source(id, "kept until the vault goes").await;
    assert_eq!(
        ada.delete(&format!("/api/vaults/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ada.get(&format!("/api/vaults/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    let sources = entities::sources::Entity::find()
        .filter(entities::sources::Column::VaultId.eq(uuid))
        .count(app.db());
    let members = entities::memberships::Entity::find()
        .filter(entities::memberships::Column::VaultId.eq(uuid))
        .count(app.db());
    let events = entities::events::Entity::find()
        .filter(entities::events::Column::VaultId.eq(uuid))
        .count(app.db());
    assert_eq!(
        (
            sources.await.unwrap(),
            members.await.unwrap(),
            events.await.unwrap()
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn vault_names_are_validated() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    for body in [
        json!({ "name": "   " }),
        json!({ "name": "x".repeat(201) }),
        json!({ "name": 5 }),
        json!({}),
    ] {
        let err = error_of(
            owner.post("/api/vaults", body.clone()).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(err["details"][0]["field"], "name", "{body}");
    }
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/api/vaults/{missing}"),
        "/api/vaults/not-a-uuid".into(),
        format!("/api/sources/{missing}"),
        format!("/api/vaults/{missing}/events"),
    ] {
        assert_eq!(
            error_of(owner.get(&path).await, StatusCode::NOT_FOUND).await["code"],
            "NOT_FOUND",
            "{path}"
        );
    }
    assert_eq!(
        error_of(
            app.client().get("/api/vaults").await,
            StatusCode::UNAUTHORIZED
        )
        .await["code"],
        "UNAUTHORIZED"
    );
}
