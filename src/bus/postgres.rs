//! The PostgreSQL bus: `pg_notify` on channel `syncscript` inside each transaction, and one
//! dedicated listening connection per node (sqlx's `PgListener` over sea-orm's pool).
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Statement, sqlx};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Heard;
use crate::{
    cluster::PresenceChange,
    domain::{
        events::{Event, EventKind, Notice},
        sessions::EndReason,
        sessions::SessionCache,
    },
};

const CHANNEL: &str = "syncscript";
/// NOTIFY refuses payloads of 8000 bytes or more.
const MAX_NOTIFY_BYTES: usize = 7900;

/// One notice on the wire. A flat struct (not a tagged enum) so that the payload can be
/// borrowed as raw JSON when it is read back.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<Uuid>,
    /// Why the session ended; a node that sends none (an older one) means `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vault: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<Uuid>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    presence: Option<PresenceChange>,
}

impl Wire<'_> {
    fn empty() -> Self {
        Self {
            session: None,
            reason: None,
            vault: None,
            seq: None,
            kind: None,
            member: None,
            payload: None,
            presence: None,
        }
    }
}

fn encode(notice: &Notice) -> String {
    let wire = match notice {
        Notice::SessionEnded(id, reason) => Wire {
            session: Some(*id),
            reason: Some(reason.name()),
            ..Wire::empty()
        },
        Notice::Event(e) => Wire {
            vault: Some(e.vault_id),
            seq: Some(e.seq),
            kind: Some(e.kind.name()),
            member: e.member,
            payload: Some(&e.payload),
            ..Wire::empty()
        },
    };
    let text = serde_json::to_string(&wire).expect("serializable");
    if text.len() <= MAX_NOTIFY_BYTES {
        return text;
    }
    // Too large for NOTIFY: a hint, and the listeners read the event from the log.
    serde_json::to_string(&Wire {
        payload: None,
        ..wire
    })
    .expect("serializable")
}

fn decode(text: &str) -> Option<Heard> {
    let wire: Wire = serde_json::from_str(text).ok()?;
    if let Some(change) = wire.presence {
        return Some(Heard::Presence(change));
    }
    if let Some(id) = wire.session {
        let reason = EndReason::parse(wire.reason);
        return Some(Heard::Notice(Notice::SessionEnded(id, reason)));
    }
    let (vault_id, seq) = (wire.vault?, wire.seq?);
    let Some(payload) = wire.payload else {
        return Some(Heard::Hint { vault_id, seq });
    };
    Some(Heard::Notice(Notice::Event(Event {
        vault_id,
        seq,
        kind: EventKind::parse(wire.kind?)?,
        member: wire.member,
        payload: payload.to_owned().into(),
    })))
}

pub(super) async fn announce(txn: &DatabaseTransaction, notices: &[Notice]) -> Result<(), DbErr> {
    for notice in notices {
        notify(txn, encode(notice)).await?;
    }
    Ok(())
}

/// Presence changes come split small enough for NOTIFY (see `cluster`).
pub(super) async fn announce_presence(
    txn: &DatabaseTransaction,
    changes: &[PresenceChange],
) -> Result<(), DbErr> {
    for change in changes {
        let wire = Wire {
            presence: Some(change.clone()),
            ..Wire::empty()
        };
        notify(txn, serde_json::to_string(&wire).expect("serializable")).await?;
    }
    Ok(())
}

async fn notify(txn: &DatabaseTransaction, payload: String) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

async fn connect(pool: &sqlx::PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Starts listening, then relays what arrives to `out` until nobody hears it any more.
pub(super) async fn listen(
    pool: sqlx::PgPool,
    out: mpsc::UnboundedSender<Heard>,
    sessions: SessionCache,
) -> Result<(), DbErr> {
    let listener = connect(&pool)
        .await
        .map_err(|e| DbErr::Custom(format!("cannot listen for events: {e}")))?;
    tokio::spawn(relay(listener, pool, out, sessions));
    Ok(())
}

/// Ended sessions are forgotten by `sessions` as soon as they are heard. A lost connection
/// makes it deaf until a new one listens; only then does the node hear [`Heard::Lost`] and
/// catch up, so that nothing committed after its catch-up read can go unheard.
async fn relay(
    mut listener: sqlx::postgres::PgListener,
    pool: sqlx::PgPool,
    out: mpsc::UnboundedSender<Heard>,
    sessions: SessionCache,
) {
    loop {
        let next = tokio::select! {
            next = listener.try_recv() => next,
            _ = out.closed() => return,
        };
        let heard = match next {
            Ok(Some(notification)) => match decode(notification.payload()) {
                Some(heard) => heard,
                None => {
                    tracing::warn!("unreadable notification ignored");
                    continue;
                }
            },
            // The connection was lost (`Ok(None)`) or failed: whatever was committed
            // meanwhile went unheard.
            lost => {
                if let Err(e) = lost {
                    tracing::warn!(error = %e, "event listener failed");
                }
                sessions.deaf();
                let Some(fresh) = reconnect(&pool, &out).await else {
                    return;
                };
                listener = fresh;
                sessions.listen_again();
                tracing::warn!("event listener reconnected; catching up from the log");
                Heard::Lost
            }
        };
        if let Heard::Notice(Notice::SessionEnded(id, _)) = &heard {
            sessions.forget(*id);
        }
        if out.send(heard).is_err() {
            return;
        }
    }
}

/// A new listening connection, tried every 250 ms until one listens (or nobody hears).
async fn reconnect(
    pool: &sqlx::PgPool,
    out: &mpsc::UnboundedSender<Heard>,
) -> Option<sqlx::postgres::PgListener> {
    loop {
        match connect(pool).await {
            Ok(listener) => return Some(listener),
            Err(e) if !out.is_closed() => {
                tracing::warn!(error = %e, "event listener cannot reconnect yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> Notice {
        Notice::Event(Event {
            vault_id: Uuid::new_v4(),
            seq: 7,
            kind: EventKind::MemberRemoved,
            member: Some(Uuid::new_v4()),
            payload: RawValue::from_string(payload.into()).unwrap().into(),
        })
    }

    #[test]
    fn a_notice_reads_back_as_it_was_sent() {
        let sent = event(r#"{"seq":7,"note":"ü"}"#);
        let Some(Heard::Notice(Notice::Event(got))) = decode(&encode(&sent)) else {
            panic!("not an event");
        };
        let Notice::Event(sent) = sent else {
            unreachable!()
        };
        assert_eq!(
            (got.vault_id, got.seq, got.kind, got.member),
            (sent.vault_id, sent.seq, sent.kind, sent.member)
        );
        assert_eq!(got.payload.get(), sent.payload.get());
    }

    #[test]
    fn an_ended_session_reads_back_with_its_reason_and_an_old_notice_as_revoked() {
        let id = Uuid::new_v4();
        let sent = Notice::SessionEnded(id, EndReason::Expired);
        let got = decode(&encode(&sent));
        assert!(
            matches!(got, Some(Heard::Notice(Notice::SessionEnded(i, EndReason::Expired))) if i == id)
        );
        let old = format!(r#"{{"session":"{id}"}}"#);
        let got = decode(&old);
        assert!(
            matches!(got, Some(Heard::Notice(Notice::SessionEnded(i, EndReason::Revoked))) if i == id)
        );
    }

    #[test]
    fn a_notice_too_large_for_notify_becomes_a_hint() {
        let big = event(&format!(r#"{{"text":"{}"}}"#, "x".repeat(9000)));
        let text = encode(&big);
        assert!(text.len() < MAX_NOTIFY_BYTES);
        assert!(matches!(decode(&text), Some(Heard::Hint { seq: 7, .. })));
    }
}
