//! The page of sources: on SQLite it is read through the app's own read connections
//! (`db::Reads`), which must return exactly what the pool returns, see every commit at once,
//! and refuse a stored value it cannot read rather than guess.
use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::Value;
use syncscript::domain::{Actor, sources};
use uuid::Uuid;

use crate::helpers::*;

/// Inserts sources straight into the table with timestamps of every precision the stored
/// format has (nanoseconds only on SQLite: PostgreSQL keeps microseconds).
async fn insert_sources(app: &TestApp, vault: Uuid, author: Uuid) -> Vec<DateTime<Utc>> {
    let base = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let nanos: &[u32] = if is_postgres() {
        &[0, 120_000_000, 123_456_000, 1_000]
    } else {
        &[
            0,
            120_000_000,
            123_456_000,
            1_000,
            123_456_789,
            999_999_999,
            5,
        ]
    };
    let mut stamps = Vec::new();
    for (i, n) in nanos.iter().enumerate() {
        let at =
            base + chrono::Duration::seconds(i as i64) + chrono::Duration::nanoseconds(*n as i64);
        stamps.push(at);
        entities::sources::Entity::insert(entities::sources::ActiveModel {
            id: Set(Uuid::new_v4()),
            vault_id: Set(vault),
            title: Set(format!("ünïcode {i} «»")),
            file_url: Set(format!("https://e.org/{i}.pdf")),
            created_by: Set((i % 2 == 0).then_some(author)),
            created_seq: Set(1_000 + i as i64),
            version: Set(i as i32 + 1),
            created_at: Set(at),
            updated_at: Set(at + chrono::Duration::nanoseconds(1_000)),
        })
        .exec_without_returning(app.db())
        .await
        .unwrap();
    }
    stamps
}

#[tokio::test]
async fn pages_read_on_the_sqlite_read_connections_equal_the_pools_across_cursors() {
    let app = spawn_app().await;
    assert_eq!(app.state.reads.is_some(), !is_postgres());
    let owner = app.login(OWNER).await;
    let vault: Uuid = app.demo_vault().await.parse().unwrap();
    let actor = Actor {
        user_id: user_id(&owner).await.parse().unwrap(),
        user_name: "Olivia Owner".into(),
    };
    let stamps = insert_sources(&app, vault, actor.user_id).await;

    let (mut cursor, mut seen) = (None, Vec::new());
    loop {
        let fast = sources::list(app.db(), app.state.reads.as_ref(), &actor, vault, 2, cursor)
            .await
            .unwrap();
        let pool = sources::list(app.db(), None, &actor, vault, 2, cursor)
            .await
            .unwrap();
        assert_eq!(format!("{:?}", fast.sources), format!("{:?}", pool.sources));
        assert_eq!(fast.next_cursor, pool.next_cursor);
        seen.extend(fast.sources);
        match fast.next_cursor {
            Some(c) => cursor = Some(sources::decode_cursor(&c).unwrap()),
            None => break,
        }
    }
    // Newest first; the demo vault's own sources come after the inserted ones.
    let inserted: Vec<_> = seen.iter().take(stamps.len()).collect();
    let created: Vec<_> = inserted.iter().map(|s| s.created_at).collect();
    assert_eq!(created, stamps.iter().rev().copied().collect::<Vec<_>>());
    for s in &inserted {
        assert_eq!(
            s.updated_at - s.created_at,
            chrono::Duration::nanoseconds(1_000)
        );
        assert_eq!(s.vault_id, vault);
    }
    assert!(inserted.iter().any(|s| s.created_by.is_none()));
    assert!(inserted.iter().any(|s| s.created_by == Some(actor.user_id)));
}

#[tokio::test]
async fn a_page_read_right_after_each_commit_shows_that_commit() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    for i in 0..20 {
        let created = owner.add_source(&vault, &format!("fresh {i}")).await;
        let page: Value = owner
            .get(&format!("/api/vaults/{vault}/sources?limit=1"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["sources"][0]["id"], created["id"], "after commit {i}");
        assert_eq!(page["sources"][0]["title"], format!("fresh {i}"));
    }
}

#[tokio::test]
async fn an_outsider_still_cannot_tell_a_vault_from_a_missing_one() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let outsider = app.login(OUTSIDER).await;
    for path in [
        format!("/api/vaults/{vault}/sources"),
        format!("/api/vaults/{}/sources", Uuid::new_v4()),
    ] {
        let err = error_of(outsider.get(&path).await, StatusCode::NOT_FOUND).await;
        assert_eq!(err["message"], "Vault not found");
    }
    // A member of a vault with no sources gets an empty page, not a 404.
    let owner = app.login(OWNER).await;
    let empty = owner.create_vault("empty").await;
    let page: Value = owner
        .get(&format!("/api/vaults/{empty}/sources"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["sources"], Value::Array(vec![]));
    assert_eq!(page["nextCursor"], Value::Null);
}

#[tokio::test]
async fn a_timestamp_stored_in_another_format_is_an_internal_error_not_a_guess() {
    if is_postgres() {
        return; // The format is SQLite's text; PostgreSQL stores a timestamptz.
    }
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let created = owner.add_source(&vault, "odd").await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    // A format sqlx would read as UTC, but never one this server writes.
    app.db()
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "UPDATE sources SET updated_at = '2026-03-04 05:06:07' WHERE id = $1",
            [id.into()],
        ))
        .await
        .unwrap();
    let path = format!("/api/vaults/{vault}/sources?limit=1");
    let err = error_of(owner.get(&path).await, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(err["code"], "INTERNAL");
    assert_eq!(err["message"], "Internal server error");
}
