//! SQLite's write-ahead log, checkpointed off the commit path.
//!
//! By default SQLite checkpoints inside whichever `COMMIT` finds the log past 1000 pages: that
//! commit copies the log into the database file and waits for two `fsync`s before it returns,
//! while the writer gate is held and every writer queues behind it. Here each connection of a
//! serving pool reports the log's size after its commits (a WAL hook, which also turns the
//! automatic checkpoint off) and the checkpointer task ([`spawn_checkpointer`]) runs a `PASSIVE` checkpoint on a
//! pool connection of its own once the log passes [`CHECKPOINT_PAGES`], then copies what was
//! appended meanwhile behind the writers' gate: commits never wait for the long part, and the
//! log stays bounded because the next write after a complete checkpoint starts it over.
//! Should the task fall behind (or not run), the commit that finds the log past
//! [`BACKSTOP_PAGES`] checkpoints inline, as SQLite would have.
use std::{
    ffi::{c_char, c_int, c_void},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use sea_orm::{ConnectionTrait, DatabaseConnection, sqlx};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// When the log is due for a checkpoint, in pages: 32 MiB of 4 KiB pages, eight times SQLite's
/// `wal_autocheckpoint`. Each checkpoint ends with a short pause for writers (see
/// [`spawn_checkpointer`]: two `fsync`s behind the gate), and the first commit after the log
/// starts over waits for one `fsync` (SQLite syncs the new log header), so a larger log means
/// fewer of both; and each checkpoint copies a page changed by many commits once. Measured with
/// POSTs at saturation on one core (`bench --rest`): 3,965 per second at 4000 pages (the core
/// idle 16 % of the time, in those pauses), 4,418–4,456 at 8000, 4,525–4,609 at 16,000; pages
/// read no slower (the log's index has a hash table per 4096 frames to look through).
pub const CHECKPOINT_PAGES: c_int = 8000;

/// Past this the committing connection checkpoints itself: the log stays bounded (128 MiB of
/// 4 KiB pages) even if the checkpointer cannot keep up.
pub const BACKSTOP_PAGES: c_int = 32_000;

/// What the connections' hooks tell the checkpointer: the log is due for a checkpoint.
pub struct WalFull {
    due: Notify,
    /// The log's size, in pages, from which a checkpoint is due.
    pages: c_int,
    /// Checkpoints the task has run.
    done: AtomicU64,
    /// The writers' gate (see [`super::Writer`]), for the end of each checkpoint.
    gate: OnceLock<Arc<Mutex<()>>>,
}

impl WalFull {
    /// One per pool, alive as long as the process: every connection's hook points to it, and
    /// a connection gives no notice when it closes.
    pub fn leak(pages: c_int) -> &'static Self {
        Box::leak(Box::new(Self {
            due: Notify::new(),
            pages,
            done: AtomicU64::new(0),
            gate: OnceLock::new(),
        }))
    }

    /// Lets the checkpointer finish each checkpoint behind the writers' `gate`.
    pub fn finish_behind(&self, gate: &Arc<Mutex<()>>) {
        let _ = self.gate.set(gate.clone());
    }
}

/// Installs the hook on one connection (which turns its automatic checkpoint off).
pub async fn report_to(
    conn: &mut sqlx::SqliteConnection,
    full: &'static WalFull,
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is this connection's, locked for us until `handle` drops.
    unsafe { report_raw(handle.as_raw_handle().as_ptr(), full) };
    Ok(())
}

/// Installs the hook on an open connection's raw handle.
///
/// # Safety
/// `db` is an open connection that no other thread uses meanwhile.
pub unsafe fn report_raw(db: *mut libsqlite3_sys::sqlite3, full: &'static WalFull) {
    // SAFETY: as the caller promises; the context pointer is `'static`, so it outlives the
    // connection.
    unsafe {
        libsqlite3_sys::sqlite3_wal_hook(
            db,
            Some(written),
            std::ptr::from_ref(full).cast_mut().cast::<c_void>(),
        );
    }
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
/// lock a writer waits for: commits go on while the pages are copied and synced. Then a second
/// one behind the writers' gate copies what they appended meanwhile (a few pages, one short
/// sync): a log copied to its end is started over by the next write, while one that writers
/// keep appending to during every checkpoint would grow to the backstop, and at saturation
/// writing ever further into a growing file cost a POST a third more CPU.
pub fn spawn_checkpointer(db: DatabaseConnection, full: &'static WalFull, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = full.due.notified() => {}
                _ = stop.cancelled() => return,
            }
            checkpoint(&db).await;
            if let Some(gate) = full.gate.get() {
                let _writers_wait = gate.lock().await;
                checkpoint(&db).await;
            }
            full.done.fetch_add(1, Ordering::Release);
        }
    });
}

async fn checkpoint(db: &DatabaseConnection) {
    if let Err(e) = db
        .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
        .await
    {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::*;
    use crate::settings::DatabaseSettings;

    /// A serving-style SQLite database in `dir` with a `blobs` table, whose commits report to a
    /// checkpointer due at 1000 pages.
    struct Blobs {
        db: DatabaseConnection,
        full: &'static WalFull,
        file: std::path::PathBuf,
        log: std::path::PathBuf,
    }

    async fn blobs(dir: &Path) -> Blobs {
        let (file, log) = (dir.join("blobs.db"), dir.join("blobs.db-wal"));
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
        Blobs {
            db,
            full,
            file,
            log,
        }
    }

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
        let Blobs {
            db,
            full,
            file,
            log,
        } = blobs(dir.path()).await;
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

    /// Writes that never pause: the checkpoints finish behind the writers' gate, so the log is
    /// started over again and again instead of growing until the backstop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_started_over_while_writes_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let Blobs { db, full, log, .. } = blobs(dir.path()).await;
        let writer = crate::db::Writer::new(db.clone(), Some(full))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        spawn_checkpointer(db.clone(), full, stop.clone());

        // 60 commits of 200 pages, one after another through the writers' connection: 12,000
        // pages through a log due for a checkpoint every 1,000.
        let mut largest = 0;
        for _ in 0..60 {
            let (txn, _gate) = writer.begin().await.unwrap();
            txn.execute_unprepared(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
                 INSERT INTO blobs SELECT randomblob(3000) FROM n",
            )
            .await
            .unwrap();
            txn.commit().await.unwrap();
            largest = largest.max(len(&log));
        }
        stop.cancel();
        assert!(
            full.done.load(Ordering::Acquire) >= 2,
            "the checkpointer ran"
        );
        // Started over, the log never holds much more than a checkpoint's worth plus what was
        // written while one ran; never started over, it would hold all 12,000 pages.
        assert!(
            largest < 4000 * 4096,
            "the log grew to {largest} bytes ({} pages)",
            largest / 4096
        );
    }
}
