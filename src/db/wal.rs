//! SQLite's write-ahead log, checkpointed off the commit path.
//!
//! By default SQLite checkpoints inside whichever `COMMIT` finds the log past 1000 pages: that
//! commit copies the log into the database file and waits for two `fsync`s before it returns,
//! while the writer gate is held and every writer queues behind it. Here each connection of a
//! serving pool reports the log's size after its commits (a WAL hook, which also turns the
//! automatic checkpoint off) and the checkpointer task ([`spawn_checkpointer`]) runs a `PASSIVE` checkpoint on a
//! pool connection of its own once the log passes [`CHECKPOINT_PAGES`]: commits never
//! wait for one, and the log stays bounded because the next write after a complete checkpoint
//! starts it over. Should the task fall behind (or not run), the commit that finds the log past
//! [`BACKSTOP_PAGES`] checkpoints inline, as SQLite would have.
use std::{
    ffi::{c_char, c_int, c_void},
    sync::atomic::{AtomicU64, Ordering},
};

use sea_orm::{ConnectionTrait, DatabaseConnection, sqlx};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// When the log is due for a checkpoint, in pages: 16 MiB of 4 KiB pages, four times SQLite's
/// `wal_autocheckpoint`. The first commit after the log starts over still waits for one
/// `fsync` (SQLite syncs the new log header), so a larger log means fewer such commits (in the
/// real shape, one in about 560 rather than one in 140, so not in the p99) and each checkpoint
/// copies a page changed by many commits once.
pub const CHECKPOINT_PAGES: c_int = 4000;

/// Past this the committing connection checkpoints itself: the log stays bounded (64 MiB of
/// 4 KiB pages) even if the checkpointer cannot keep up.
pub const BACKSTOP_PAGES: c_int = 16_000;

/// What the connections' hooks tell the checkpointer: the log is due for a checkpoint.
pub struct WalFull {
    due: Notify,
    /// The log's size, in pages, from which a checkpoint is due.
    pages: c_int,
    /// Checkpoints the task has run.
    done: AtomicU64,
}

impl WalFull {
    /// One per pool, alive as long as the process: every connection's hook points to it, and
    /// a connection gives no notice when it closes.
    pub fn leak(pages: c_int) -> &'static Self {
        Box::leak(Box::new(Self {
            due: Notify::new(),
            pages,
            done: AtomicU64::new(0),
        }))
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
        // SAFETY: SQLite's own automatic checkpoint runs from this hook the same way. Its
        // result is ignored, as SQLite's is: what this hook returns becomes the result of the
        // COMMIT that called it, which has committed whatever it says (a checkpoint already
        // running elsewhere answers SQLITE_BUSY, and the commit would look failed).
        unsafe {
            libsqlite3_sys::sqlite3_wal_checkpoint_v2(
                db,
                schema,
                libsqlite3_sys::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        return libsqlite3_sys::SQLITE_OK;
    }
    // SAFETY: `ctx` is the `&'static WalFull` given to `report_to`.
    let full = unsafe { &*ctx.cast::<WalFull>() };
    if pages >= full.pages {
        // A permit is kept if the checkpointer is busy: notices coalesce into one more run.
        full.due.notify_one();
    }
    libsqlite3_sys::SQLITE_OK
}

/// Runs `PASSIVE` checkpoints when the log is due for one, until `stop`. `PASSIVE` takes no
/// lock a writer waits for: commits go on while the pages are copied and synced.
pub fn spawn_checkpointer(db: DatabaseConnection, full: &'static WalFull, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = full.due.notified() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            full.done.fetch_add(1, Ordering::Release);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::*;
    use crate::settings::DatabaseSettings;

    /// One commit of about 1500 pages (past the test's 1000).
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

    /// Waits (up to 10 s) for the checkpointer to have run `n` checkpoints.
    async fn checkpointed(full: &WalFull, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while full.done.load(Ordering::Acquire) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the checkpointer ran {} checkpoints, expected {n}",
                full.done.load(Ordering::Acquire)
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
        let full = WalFull::leak(1000);
        let db = crate::db::open(&cfg, Some(full)).await.unwrap();
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
        checkpointed(full, 1).await;
        assert!(len(&file) >= round, "the checkpoint copied the log");
        let first = len(&log);
        for n in 2..=6 {
            write_a_round(&db).await;
            checkpointed(full, n).await;
        }
        // Six rounds went through the log, and it holds about one: each started it over.
        assert!(
            len(&log) <= first + first / 4,
            "the log grew from {first} to {} bytes",
            len(&log)
        );
        stop.cancel();
    }
}
