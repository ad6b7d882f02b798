//! Sources and the event log: validation, optimistic concurrency, pagination, `seq` integrity,
//! and nothing published for a rolled-back mutation.
use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_source_is_created_read_updated_and_deleted() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let contributor = app.login(CONTRIBUTOR).await;
    let source = contributor
        .add_source(&vault, "  Attention Is All You Need ")
        .await;
    assert_eq!(source["title"], "Attention Is All You Need");
    assert_eq!(source["version"], 1);
    assert_eq!(source["vaultId"].as_str(), Some(vault.as_str()));
    for key in [
        "id",
        "vaultId",
        "title",
        "fileUrl",
        "createdBy",
        "createdAt",
        "updatedAt",
        "version",
    ] {
        assert!(source.get(key).is_some(), "{key}");
    }
    let id = source["id"].as_str().unwrap();
    let got: Value = contributor
        .get(&format!("/api/sources/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["source"], source);
    // A page is read by a statement of its own: it lists the source exactly as it was created.
    let page: Value = contributor
        .get(&format!("/api/vaults/{vault}/sources?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["sources"][0], source);
    let updated: Value = contributor
        .patch(
            &format!("/api/sources/{id}"),
            json!({ "title": "Renamed", "version": 1 }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            updated["source"]["title"].as_str(),
            updated["source"]["version"].as_i64()
        ),
        (Some("Renamed"), Some(2))
    );
    assert_eq!(
        contributor
            .delete(&format!("/api/sources/{id}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        contributor
            .get(&format!("/api/sources/{id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_source_fields_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let ok_url = "https://example.com/a.pdf";
    let cases = [
        (json!({ "title": "", "fileUrl": ok_url }), "title"),
        (json!({ "title": "   ", "fileUrl": ok_url }), "title"),
        (
            json!({ "title": "x".repeat(301), "fileUrl": ok_url }),
            "title",
        ),
        (json!({ "title": 42, "fileUrl": ok_url }), "title"),
        (json!({ "fileUrl": ok_url }), "title"),
        (
            json!({ "title": "T", "fileUrl": "javascript:alert(1)" }),
            "fileUrl",
        ),
        (
            json!({ "title": "T", "fileUrl": "/relative/a.pdf" }),
            "fileUrl",
        ),
        (
            json!({ "title": "T", "fileUrl": format!("https://e.org/{}", "a".repeat(2040)) }),
            "fileUrl",
        ),
        (
            json!({ "title": "T", "fileUrl": ["https://e.org"] }),
            "fileUrl",
        ),
        (json!({ "title": "T" }), "fileUrl"),
    ];
    for (body, field) in cases {
        let err = error_of(
            owner
                .post(&format!("/api/vaults/{vault}/sources"), body.clone())
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(err["code"], "VALIDATION_ERROR");
        assert_eq!(err["details"][0]["field"], field, "{body}");
    }
    let source = owner.add_source(&vault, "ok").await;
    let id = source["id"].as_str().unwrap();
    let err = error_of(
        owner
            .patch(&format!("/api/sources/{id}"), json!({ "version": "one" }))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["details"][0]["field"], "version");
    let events: Value = owner
        .get(&format!("/api/vaults/{vault}/events"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["latestSeq"], 1, "failed requests consumed no seq");
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let id = owner.add_source(&vault, "v1").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/sources/{id}");
    assert_eq!(
        owner
            .patch(&path, json!({ "title": "v2", "version": 1 }))
            .await
            .status(),
        StatusCode::OK
    );
    let stale = owner
        .patch(&path, json!({ "title": "lost update", "version": 1 }))
        .await;
    assert_eq!(
        error_of(stale, StatusCode::CONFLICT).await["code"],
        "CONFLICT"
    );
    let now: Value = owner.get(&path).await.json().await.unwrap();
    assert_eq!(
        (
            now["source"]["title"].as_str(),
            now["source"]["version"].as_i64()
        ),
        (Some("v2"), Some(2))
    );
    let events: Value = owner
        .get(&format!("/api/vaults/{vault}/events"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["latestSeq"], 2);
}

#[tokio::test]
async fn pagination_walks_every_source_exactly_once_while_inserts_happen() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let mut expected = HashSet::new();
    for i in 0..23 {
        expected.insert(
            owner.add_source(&vault, &format!("s{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/vaults/{vault}/sources?limit=5&cursor={c}"),
            None => format!("/api/vaults/{vault}/sources?limit=5"),
        };
        let page: Value = owner.get(&path).await.json().await.unwrap();
        seen.extend(
            page["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string()),
        );
        // Newer sources land in front of the cursor and must not show up in later pages.
        owner.add_source(&vault, "inserted meanwhile").await;
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23, "no duplicates, nothing skipped");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let first: Value = owner
        .get(&format!("/api/vaults/{vault}/sources?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["sources"][0]["title"], "inserted meanwhile",
        "newest first"
    );
    let bad = owner
        .get(&format!("/api/vaults/{vault}/sources?cursor=zzz"))
        .await;
    assert_eq!(
        error_of(bad, StatusCode::BAD_REQUEST).await["details"][0]["field"],
        "cursor"
    );
    let bad = owner
        .get(&format!("/api/vaults/{vault}/sources?limit=0"))
        .await;
    assert_eq!(
        error_of(bad, StatusCode::BAD_REQUEST).await["details"][0]["field"],
        "limit"
    );
}

#[tokio::test]
async fn the_event_log_records_every_mutation_in_seq_order() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let id = owner.add_source(&vault, "a").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    owner
        .patch(&format!("/api/sources/{id}"), json!({ "title": "b" }))
        .await;
    owner.delete(&format!("/api/sources/{id}")).await;
    owner
        .patch(
            &format!("/api/vaults/{vault}"),
            json!({ "description": "d" }),
        )
        .await;
    let log: Value = owner
        .get(&format!("/api/vaults/{vault}/events"))
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "source:created",
            "source:updated",
            "source:deleted",
            "vault:updated"
        ]
    );
    let seqs: Vec<i64> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let first = &log["events"][0];
    assert_eq!(first["actor"]["role"], "owner");
    assert_eq!(first["actor"]["userName"], "Olivia Owner");
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(log["events"][2]["sourceId"].as_str(), Some(id.as_str()));
    let since: Value = owner
        .get(&format!("/api/vaults/{vault}/events?since=2&limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            since["events"][0]["seq"].as_i64(),
            since["latestSeq"].as_i64()
        ),
        (Some(3), Some(4))
    );
}

#[tokio::test]
async fn concurrent_creations_get_every_seq_exactly_once() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (c, v) = (owner.clone(), vault.clone());
            tokio::spawn(
                async move { c.create_source(&v, &format!("parallel {i}")).await.status() },
            )
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let page: Value = owner
        .get(&format!("/api/vaults/{vault}/sources?limit=200"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["sources"].as_array().unwrap().len(), 50);
    let log: Value = owner
        .get(&format!("/api/vaults/{vault}/events?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    let seqs: Vec<i64> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_mutation_that_fails_after_its_insert_publishes_nothing_and_keeps_no_seq() {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use syncscript::domain::{Actor, input, sources};
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let viewer = app.login(VIEWER).await;
    let mut socket = app.socket(&viewer).await;
    assert_eq!(socket.join(&vault).await["ok"], true);

    let owner = app.login(OWNER).await;
    let session: Value = owner.get("/api/auth/session").await.json().await.unwrap();
    let actor = Actor {
        user_id: session["user"]["id"].as_str().unwrap().parse().unwrap(),
        user_name: "Olivia Owner".into(),
    };
    let vault_id: uuid::Uuid = vault.parse().unwrap();
    let mut tx = app.state.begin().await.unwrap();
    let new = sources::NewSource {
        title: input::SourceTitle::parse("doomed").unwrap(),
        file_url: input::FileUrl::parse("https://e.org/x.pdf").unwrap(),
    };
    let created = sources::create(&mut tx, &actor, vault_id, new)
        .await
        .unwrap();
    // A later statement in the same transaction violates the primary key.
    let now = chrono::Utc::now();
    let clash = entities::sources::Entity::insert(entities::sources::ActiveModel {
        id: Set(created.id),
        vault_id: Set(vault_id),
        title: Set("dup".into()),
        file_url: Set("https://e.org".into()),
        created_by: Set(None),
        created_seq: Set(99),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&*tx)
    .await;
    assert!(clash.is_err());
    drop(tx);

    assert!(
        socket
            .try_expect("source:created", std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "nothing was broadcast"
    );
    let log: Value = owner
        .get(&format!("/api/vaults/{vault}/events"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            log["latestSeq"].as_i64(),
            log["events"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    let next = owner.add_source(&vault, "after").await;
    let event = socket
        .expect("source:created", std::time::Duration::from_secs(2))
        .await;
    assert_eq!(
        (event["seq"].as_i64(), event["source"]["id"].clone()),
        (Some(1), next["id"].clone())
    );
}
