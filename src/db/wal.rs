//! SQLite's write-ahead log, checkpointed off the commit path.
//!
//! By default SQLite checkpoints inside whichever `COMMIT` finds the log past 1000 pages: that
//! commit copies the log into the database file and waits for two `fsync`s before it returns,
//! while the writer gate is held and every writer queues behind it. Here each connection of a
//! serving pool reports the log's size after its commits (a WAL hook, which also turns the
//! automatic checkpoint off) and the checkpointer task ([`spawn_checkpointer`]) runs a `PASSIVE` checkpoint on a
//! pool connection of its own as soon as the log passes [`CHECKPOINT_PAGES`]: commits never
//! wait for one, and the log stays bounded because the next write after a complete checkpoint
//! starts it over. Should the task fall behind (or not run), the commit that finds the log past
//! [`BACKSTOP_PAGES`] checkpoints inline, as SQLite would have.
use std::ffi::{c_char, c_int, c_void};

use sea_orm::{ConnectionTrait, DatabaseConnection, sqlx};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// SQLite's own threshold for its automatic checkpoint (`wal_autocheckpoint`), in pages.
pub const CHECKPOINT_PAGES: c_int = 1000;

/// Past this the committing connection checkpoints itself: the log stays bounded (64 MiB of
/// 4 KiB pages) even if the checkpointer cannot keep up.
pub const BACKSTOP_PAGES: c_int = 16 * CHECKPOINT_PAGES;

/// What the connections' hooks tell the checkpointer: the log is due for a checkpoint.
#[derive(Default)]
pub struct WalFull(Notify);

impl WalFull {
    /// One per pool, alive as long as the process: every connection's hook points to it, and
    /// a connection gives no notice when it closes.
    pub fn leak() -> &'static Self {
        Box::leak(Box::default())
    }
}

/// Installs the hook on one connection (which turns its automatic checkpoint off).
pub async fn report_to(
    conn: &mut sqlx::SqliteConnection,
    full: &'static WalFull,
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `db` is this connection's open handle, locked for us until `handle` drops; the
    // context pointer is `'static`, so it outlives the connection.
    unsafe {
        libsqlite3_sys::sqlite3_wal_hook(
            db.as_ptr(),
            Some(written),
            std::ptr::from_ref(full).cast_mut().cast::<c_void>(),
        );
    }
    Ok(())
}

/// SQLite calls this after each commit with the pages now in the log, on the committing
/// connection's thread, with no lock held that another connection would wait for.
unsafe extern "C" fn written(
    ctx: *mut c_void,
    db: *mut libsqlite3_sys::sqlite3,
    schema: *const c_char,
    pages: c_int,
) -> c_int {
    if pages >= BACKSTOP_PAGES {
        // SAFETY: SQLite's own automatic checkpoint runs from this hook the same way.
        return unsafe {
            libsqlite3_sys::sqlite3_wal_checkpoint_v2(
                db,
                schema,
                libsqlite3_sys::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }
    if pages >= CHECKPOINT_PAGES {
        // SAFETY: `ctx` is the `&'static WalFull` given to `report_to`.
        let full = unsafe { &*ctx.cast::<WalFull>() };
        // A permit is kept if the checkpointer is busy: notices coalesce into one more run.
        full.0.notify_one();
    }
    libsqlite3_sys::SQLITE_OK
}

/// Runs `PASSIVE` checkpoints when the log is due for one, until `stop`. `PASSIVE` takes no
/// lock a writer waits for: commits go on while the pages are copied and synced.
pub fn spawn_checkpointer(db: DatabaseConnection, full: &'static WalFull, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = full.0.notified() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::*;
    use crate::settings::DatabaseSettings;

    /// One commit of about 1500 pages (past [`CHECKPOINT_PAGES`]).
    async fn write_a_round(db: &DatabaseConnection) {
        db.execute_unprepared(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) \
             INSERT INTO blobs SELECT randomblob(3000) FROM n",
        )
        .await
        .unwrap();
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// Waits (up to 10 s) for the database file to reach `at_least` bytes: a checkpoint done.
    async fn checkpointed(file: &Path, at_least: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while len(file) < at_least {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint: the database file has {} bytes, expected {at_least}",
                len(file)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn commits_leave_checkpoints_to_the_checkpointer_and_the_log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join("wal.db"), dir.path().join("wal.db-wal"));
        let cfg = DatabaseSettings {
            url: format!("sqlite://{}", file.display()),
            max_connections: 3,
            connect_timeout: Duration::from_secs(5),
        };
        let (db, full) = crate::db::connect_serving(&cfg).await.unwrap();
        let full = full.expect("SQLite reports its log");
        db.execute_unprepared("CREATE TABLE blobs (b BLOB)")
            .await
            .unwrap();
        // 1500 blobs of 3000 bytes: one a page, so a checkpointed round adds at least this.
        let round: u64 = 1500 * 4096;

        write_a_round(&db).await;
        assert!(
            len(&file) < round / 2,
            "the commit checkpointed itself: the database file has {} bytes",
            len(&file)
        );

        let stop = CancellationToken::new();
        spawn_checkpointer(db.clone(), full, stop.clone());
        checkpointed(&file, round).await;
        let first = len(&log);
        for n in 2..=6 {
            write_a_round(&db).await;
            checkpointed(&file, n * round).await;
        }
        // Six rounds went through the log, and it holds about one: each started it over (or,
        // when it began before the last checkpoint had finished, the one after it did).
        assert!(
            len(&log) < 3 * first,
            "the log grew from {first} to {} bytes",
            len(&log)
        );
        stop.cancel();
    }
}
