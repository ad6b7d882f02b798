//! A new source, over REST and over the socket alike, commits on SQLite through the writer's
//! direct connection on the calling thread (`db::DirectTxn`); other mutations go through sqlx.
//! Both paths must store the same values the same way, interleave in one `seq` order, and roll
//! back whatever a refused write began.
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use syncscript::domain::{
    Actor,
    sources::{self, NewSource, SourceFields},
};

use crate::helpers::*;

const SOON: Duration = Duration::from_secs(5);

/// How SQLite holds each column of a source: its storage class and, for text, the value.
async fn stored(app: &TestApp, title: &str) -> Vec<String> {
    let sql = "SELECT typeof(id), typeof(vault_id), typeof(created_by), created_at, \
               typeof(created_at), updated_at, created_seq, version FROM sources WHERE title = ?";
    let row = app
        .db()
        .query_one_raw(Statement::from_sql_and_values(
            app.db().get_database_backend(),
            sql,
            [title.into()],
        ))
        .await
        .unwrap()
        .expect("the source is stored");
    let text = |i| row.try_get_by_index::<String>(i).unwrap();
    let (created, updated) = (text(3), text(5));
    vec![
        text(0),
        text(1),
        text(2),
        // RFC 3339 as sqlx writes it, with its offset; only the instant differs.
        format!("{}…{}", &created[10..11], &created[created.len() - 6..]),
        text(4),
        format!("same as created: {}", created == updated),
        format!("seq {}", row.try_get_by_index::<i64>(6).unwrap() > 0),
        format!("version {}", row.try_get_by_index::<i32>(7).unwrap()),
    ]
}

async fn latest_seq(owner: &Client, vault: &str) -> i64 {
    let resp = owner
        .get(&format!("/api/vaults/{vault}/events?limit=1"))
        .await;
    resp.json::<Value>().await.unwrap()["latestSeq"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn sources_created_over_rest_and_over_the_socket_are_stored_alike_in_one_seq_order() {
    if is_postgres() {
        return; // one path there
    }
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = app.demo_vault().await;
    let mut socket = app.socket(&owner).await;
    assert_eq!(socket.join(&vault).await["ok"], true);
    let before = latest_seq(&owner, &vault).await;

    let actor = Actor {
        user_id: user_id(&owner).await.parse().unwrap(),
        user_name: "Olivia Owner".into(),
    };
    let mut seqs = Vec::new();
    for round in 0..3 {
        let rest = owner.add_source(&vault, &format!("rest {round}")).await;
        let ack = socket
            .emit_ack(
                "source:create",
                json!({ "vaultId": vault, "title": format!("socket {round}"), "fileUrl": "https://e.org/a.pdf" }),
            )
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
        // The same domain function in a transaction through sqlx.
        let fields = SourceFields {
            title: format!("sqlx {round}"),
            file_url: "https://e.org/a.pdf".into(),
        };
        let mut tx = app.state.begin().await.unwrap();
        let through_sqlx = sources::create(
            &mut tx,
            &actor,
            vault.parse().unwrap(),
            NewSource::parse(&fields).unwrap(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        seqs.push(rest["id"].clone());
        seqs.push(ack["source"]["id"].clone());
        seqs.push(json!(through_sqlx.id));
    }
    assert_eq!(stored(&app, "rest 1").await, stored(&app, "sqlx 1").await);
    assert_eq!(stored(&app, "socket 1").await, stored(&app, "sqlx 1").await);
    assert_eq!(
        stored(&app, "rest 0").await[..5],
        ["blob", "blob", "blob", "T…+00:00", "text"]
    );

    // Every commit took the next seq, in the order made, and each was announced once.
    assert_eq!(latest_seq(&owner, &vault).await, before + 9);
    let mut events = Vec::new();
    for _ in 0..9 {
        events.push(socket.expect("source:created", SOON).await);
    }
    let ids: Vec<Value> = events.iter().map(|e| e["source"]["id"].clone()).collect();
    assert_eq!(ids, seqs);
    let got: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, ((before + 1)..=(before + 9)).collect::<Vec<_>>());
    // What REST wrote reads back through sea-orm (the source, and its log entry's payload).
    let id = seqs[0].as_str().unwrap();
    let resp = owner.get(&format!("/api/sources/{id}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["source"]["title"],
        "rest 0"
    );
    let log = owner
        .get(&format!(
            "/api/vaults/{vault}/events?since={before}&limit=1"
        ))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(log["events"][0]["source"]["id"], seqs[0], "{log}");
}

#[tokio::test]
async fn a_refused_source_takes_no_seq_and_the_next_one_gets_the_next() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let viewer = app.login(VIEWER).await;
    let vault = app.demo_vault().await;
    let before = latest_seq(&owner, &vault).await;

    let refused = viewer.create_source(&vault, "not mine to add").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let bad = owner
        .post(
            &format!("/api/vaults/{vault}/sources"),
            json!({ "title": "x".repeat(301), "fileUrl": "https://e.org/a.pdf" }),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        latest_seq(&owner, &vault).await,
        before,
        "nothing was taken"
    );

    let ok = owner.add_source(&vault, "mine").await;
    assert_eq!(ok["title"], "mine");
    assert_eq!(latest_seq(&owner, &vault).await, before + 1);
    // And a write through sqlx right after sees it, and follows it.
    let renamed = owner
        .patch(
            &format!("/api/sources/{}", ok["id"].as_str().unwrap()),
            json!({ "title": "mine, renamed", "version": 1 }),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(latest_seq(&owner, &vault).await, before + 2);
}

/// A socket whose session ended without its disconnect reaching it (the notice was lost) can
/// no longer write: each socket mutation reads the session in its own transaction, the direct
/// one of `source:create` included. The refused socket is told why and disconnected.
#[tokio::test]
async fn a_socket_whose_session_ended_unannounced_cannot_write() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let create = json!({ "vaultId": vault, "title": "late", "fileUrl": "https://e.org/a.pdf" });
    for (end, reason) in [("expired", "expired"), ("deleted", "revoked")] {
        let owner = app.login(OWNER).await;
        let owner_id: uuid::Uuid = user_id(&owner).await.parse().unwrap();
        let id = owner.add_source(&vault, "early").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut sockets = Vec::new();
        for _ in 0..3 {
            sockets.push(app.socket(&owner).await);
        }

        // Straight in the database: no notice, so the node still holds the sockets.
        let backend = app.db().get_database_backend();
        let sql = match (end, backend) {
            ("expired", sea_orm::DbBackend::Postgres) => {
                "UPDATE sessions SET expires_at = NOW() - INTERVAL '1 hour' WHERE user_id = $1"
            }
            ("expired", _) => {
                "UPDATE sessions SET expires_at = '2000-01-01T00:00:00+00:00' WHERE user_id = ?"
            }
            (_, sea_orm::DbBackend::Postgres) => "DELETE FROM sessions WHERE user_id = $1",
            _ => "DELETE FROM sessions WHERE user_id = ?",
        };
        app.db()
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [owner_id.into()],
            ))
            .await
            .unwrap();

        let writes = [
            ("source:create", create.clone()),
            ("source:update", json!({ "sourceId": id, "title": "later" })),
            ("source:delete", json!({ "sourceId": id })),
        ];
        for (socket, (event, data)) in sockets.iter_mut().zip(writes) {
            let ack = socket.emit_ack(event, data).await;
            assert_eq!(ack["ok"], false, "{end}, {event}: {ack}");
            assert_eq!(
                ack["error"]["code"], "UNAUTHORIZED",
                "{end}, {event}: {ack}"
            );
            socket.expect_session_ended(reason, SOON).await;
        }
    }
}
