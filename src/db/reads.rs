//! Hot reads on SQLite, run on the calling thread through rusqlite rather than through sqlx's
//! worker thread: measured on `GET …/sources`, the hand-off to that thread and back (twice more
//! for the ping when a pooled connection is returned) and the copy of every value of every row
//! cost more than the statement itself. A page is a few µs of SQLite work on pages already in
//! memory, so it runs inline on the tokio worker, as better-sqlite3 does on Node's one thread.
//!
//! One connection per worker thread, each behind a mutex held only while one statement runs
//! (never across an `.await`), so a worker almost always finds one free and each keeps its own
//! page cache warm. They are opened once, after migrations, and can only read
//! (`query_only`): every write still goes through the writer (see [`super::writer`]). In WAL
//! mode each statement reads the latest commit of any connection.
use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, types::Type};
use uuid::Uuid;

use super::{open_rusqlite, sqlite_path};
use crate::settings::DatabaseSettings;

pub struct Reads {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl Reads {
    /// `None` unless `cfg` names an SQLite file. The file must exist (migrated already).
    pub fn open(cfg: &DatabaseSettings) -> Result<Option<Self>, sea_orm::DbErr> {
        let Some(path) = sqlite_path(&cfg.url) else {
            return Ok(None);
        };
        let conns = (0..crate::cpus())
            .map(|_| open_one(&path).map(Mutex::new))
            .collect::<Result<_, _>>()
            .map_err(|e| sea_orm::DbErr::Custom(format!("read connection to {path}: {e}")))?;
        Ok(Some(Self {
            conns,
            next: AtomicUsize::new(0),
        }))
    }

    /// Runs `read` on a free connection (waiting for one only when all are busy). A panic in
    /// `read` leaves the connection as sound as SQLite left it, so a poisoned lock is taken.
    pub fn run<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let free = (0..n).find_map(|i| self.conns[(start + i) % n].try_lock().ok());
        let conn = match free {
            Some(conn) => conn,
            None => self.conns[start % n]
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        };
        read(&conn)
    }
}

fn open_one(path: &str) -> rusqlite::Result<Connection> {
    let conn = open_rusqlite(path)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// A uuid as sqlx stores one: its 16 bytes in a blob.
pub fn uuid(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let bytes = row
        .get_ref(idx)?
        .as_blob()
        .map_err(|e| conversion(idx, Type::Blob, e))?;
    Uuid::from_slice(bytes).map_err(|e| conversion(idx, Type::Blob, e))
}

/// A nullable uuid column.
pub fn uuid_or_null(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    if row.get_ref(idx)?.data_type() == Type::Null {
        return Ok(None);
    }
    uuid(row, idx).map(Some)
}

/// A timestamp as sqlx stores a `DateTime<Utc>`: RFC 3339 text
/// (`2026-12-05T18:01:26.172062547+00:00`). Anything else is an error, never a guess.
pub fn timestamp(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text = row
        .get_ref(idx)?
        .as_str()
        .map_err(|e| conversion(idx, Type::Text, e))?;
    parse_timestamp(text).map_err(|e| conversion(idx, Type::Text, e))
}

/// RFC 3339 text as sqlx stores a `DateTime<Utc>`, read back.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

fn conversion(
    idx: usize,
    ty: Type,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(e))
}
