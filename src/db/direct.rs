//! Write transactions on SQLite run on the calling thread, through rusqlite, for mutations
//! whose every statement goes through [`crate::domain::Tx`]'s own methods (a new source).
//!
//! Through sqlx each statement is a round trip to the connection's worker thread, and
//! returning the connection to its pool one more (a ping). A new source is five: measured in
//! the real shape (100 commits/s over 1000 vaults), 6 of the 14.6 context switches of a commit
//! and 230 of its 795 µs of server CPU were on sqlx's worker threads, for statements that take
//! SQLite a few µs each. Here they run inline on the tokio worker, as better-sqlite3 runs them
//! on Node's one thread.
//!
//! The connection is used only behind the writers' gate (see [`super::Writer`]), so `BEGIN
//! IMMEDIATE` never waits for another writer of this process; its lock is held only while one
//! statement runs, never across an `.await`. Values are bound exactly as sqlx binds them, so
//! what either path writes reads the same through the other (uuids as 16-byte blobs, times as
//! RFC 3339 text, JSON as text).
use std::sync::{Arc, Mutex, PoisonError};

use chrono::SecondsFormat;
use rusqlite::{Connection, types::Value as Sql};
use sea_orm::{Statement, Value};
use tokio::sync::OwnedMutexGuard;

use super::{WalFull, open_rusqlite, wal};

/// The direct write connection, shared by the writer's transactions one at a time.
#[derive(Clone)]
pub struct Direct(Arc<Mutex<Connection>>);

impl Direct {
    /// Opens it with the pool's settings: WAL (already the file's), `synchronous = NORMAL`,
    /// foreign keys, and with `wal_full` its commits reporting to the checkpointer.
    pub fn open(path: &str, wal_full: Option<&'static WalFull>) -> rusqlite::Result<Self> {
        let conn = open_rusqlite(path)?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        if let Some(full) = wal_full {
            // SAFETY: the handle is this open connection's, which the hook never outlives
            // (`full` is 'static).
            unsafe { wal::report_raw(conn.handle(), full) };
        }
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Begins a transaction; `gate` is the writers' gate, held until it ends.
    pub fn begin(&self, gate: OwnedMutexGuard<()>) -> rusqlite::Result<DirectTxn> {
        let mut txn = DirectTxn {
            conn: self.clone(),
            open: false,
            gate: Some(gate),
        };
        txn.run(|c| c.prepare_cached("BEGIN IMMEDIATE")?.execute([]))?;
        txn.open = true;
        Ok(txn)
    }
}

/// An open transaction on the direct connection; dropped without [`DirectTxn::commit`], it
/// rolls back.
pub struct DirectTxn {
    conn: Direct,
    open: bool,
    gate: Option<OwnedMutexGuard<()>>,
}

impl DirectTxn {
    fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        f(&self.conn.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs a statement that returns nothing; returns the rows it changed.
    pub fn execute(&self, stmt: &Statement) -> rusqlite::Result<usize> {
        let values = bind(stmt)?;
        self.run(|c| {
            c.prepare_cached(&stmt.sql)?
                .execute(rusqlite::params_from_iter(values))
        })
    }

    /// The first row a statement returns, each column as SQLite holds it.
    pub fn query_row(&self, stmt: &Statement) -> rusqlite::Result<Option<Vec<Sql>>> {
        let values = bind(stmt)?;
        self.run(|c| {
            let mut prepared = c.prepare_cached(&stmt.sql)?;
            let columns = prepared.column_count();
            let mut rows = prepared.query(rusqlite::params_from_iter(values))?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let row = (0..columns)
                .map(|i| row.get::<_, Sql>(i))
                .collect::<rusqlite::Result<_>>()?;
            // A `RETURNING` statement finishes its changes only once stepped to its end.
            while rows.next()?.is_some() {}
            Ok(Some(row))
        })
    }

    /// Commits; returns the writers' gate, for the caller to announce what committed before
    /// the next writer may commit (events go out in commit order).
    pub fn commit(mut self) -> rusqlite::Result<OwnedMutexGuard<()>> {
        self.run(|c| c.prepare_cached("COMMIT")?.execute([]))?;
        self.open = false;
        Ok(self.gate.take().expect("the gate is held until commit"))
    }
}

impl Drop for DirectTxn {
    fn drop(&mut self) {
        if self.open {
            // A failed statement may have ended the transaction already; then this fails too.
            let _ = self.run(|c| c.execute_batch("ROLLBACK"));
        }
    }
}

/// A statement's values as sqlx-sqlite binds them (`sea-query-sqlx`'s `SqlxValues`).
fn bind(stmt: &Statement) -> rusqlite::Result<Vec<Sql>> {
    let Some(values) = &stmt.values else {
        return Ok(Vec::new());
    };
    values.0.iter().map(sql_value).collect()
}

fn sql_value(value: &Value) -> rusqlite::Result<Sql> {
    let int = |i: Option<i64>| i.map_or(Sql::Null, Sql::Integer);
    let text = |s: Option<String>| s.map_or(Sql::Null, Sql::Text);
    Ok(match value {
        Value::Bool(b) => int(b.map(i64::from)),
        Value::Int(i) => int(i.map(i64::from)),
        Value::BigInt(i) => int(*i),
        Value::String(s) => text(s.clone()),
        Value::Uuid(u) => u.map_or(Sql::Null, |u| Sql::Blob(u.as_bytes().to_vec())),
        Value::ChronoDateTimeUtc(t) => {
            text(t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false)))
        }
        Value::Json(j) => text(j.as_ref().map(|j| j.to_string())),
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("no direct SQLite binding for {other:?}").into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn values_are_bound_as_sqlx_binds_them() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 18, 1, 26).unwrap()
            + chrono::Duration::nanoseconds(172_062_547);
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let cases = [
            (
                Value::from(at),
                Sql::Text("2026-12-05T18:01:26.172062547+00:00".into()),
            ),
            (Value::from(id), Sql::Blob(id.as_bytes().to_vec())),
            (Value::Uuid(None), Sql::Null),
            (Value::from(7_i32), Sql::Integer(7)),
            (Value::from(true), Sql::Integer(1)),
            (
                Value::from(serde_json::json!({"a": "é"})),
                Sql::Text(r#"{"a":"é"}"#.into()),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(sql_value(&value).unwrap(), expected, "{value:?}");
        }
        assert!(
            sql_value(&Value::Double(Some(1.5))).is_err(),
            "unknown kinds are refused"
        );
    }
}
