//! Connecting to SQLite or PostgreSQL, applying migrations, and opening write transactions.
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, sqlx};

use crate::settings::{DatabaseSettings, redact_url};

mod built;
mod direct;
pub mod reads;
mod wal;
mod writer;

pub use built::BuiltOnce;
pub use direct::DirectTxn;
pub use reads::Reads;
pub use wal::{WalFull, spawn_checkpointer};
pub use writer::{Writer, WriterGuard};

/// How long an SQLite connection waits for a lock before it gives up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection of our own to the SQLite file (see [`reads`] and [`direct`]), set up as the
/// pool's are: the same busy timeout, plans kept (see [`keep_sqlite_plans`]). Each is used by
/// one thread at a time, behind a mutex of ours, so SQLite's own per-connection mutex is off.
fn open_rusqlite(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::{OpenFlags, config::DbConfig};
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Connects; SQLite runs in WAL mode with foreign keys on and a busy timeout, and its file's
/// folder is created on first run. SQLite checkpoints inside commits, as it does by default:
/// for short-lived commands.
pub async fn connect(cfg: &DatabaseSettings) -> Result<DatabaseConnection, sea_orm::DbErr> {
    open(cfg, None).await
}

/// Connects for serving: on SQLite, commits leave checkpoints to a task (see [`wal`]); the
/// returned notice is for [`spawn_checkpointer`], which the caller runs for as long as it serves.
pub async fn connect_serving(
    cfg: &DatabaseSettings,
) -> Result<(DatabaseConnection, Option<&'static WalFull>), sea_orm::DbErr> {
    let full = sqlite_path(&cfg.url)
        .is_some()
        .then(|| WalFull::leak(wal::CHECKPOINT_PAGES));
    Ok((open(cfg, full).await?, full))
}

async fn open(
    cfg: &DatabaseSettings,
    wal_full: Option<&'static WalFull>,
) -> Result<DatabaseConnection, sea_orm::DbErr> {
    if let Some(path) = sqlite_path(&cfg.url)
        && let Some(dir) = std::path::Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| sea_orm::DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    if sqlite_path(&cfg.url).is_some() {
        sqlite_without_memory_statistics();
    }
    let mut opts = ConnectOptions::new(cfg.url.clone());
    opts.max_connections(cfg.max_connections)
        .min_connections(1)
        .connect_timeout(cfg.connect_timeout)
        .acquire_timeout(cfg.connect_timeout)
        // A PostgreSQL connection can break while idle; an SQLite one is a file handle in this
        // process, and pinging it costs two thread hand-offs on every query.
        .test_before_acquire(sqlite_path(&cfg.url).is_none())
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(BUSY_TIMEOUT)
                .create_if_missing(true)
        })
        .map_sqlx_sqlite_pool_opts(move |o| {
            o.after_connect(move |conn, _| Box::pin(prepare_sqlite(conn, wal_full)))
        })
        // sqlx logs every NOTICE the server sends at INFO, such as the four "relation
        // seaql_migrations already exists, skipping" of each start-up: only warnings and
        // errors are worth a line.
        .map_sqlx_postgres_opts(|o| o.options([("client_min_messages", "warning")]));
    let db = Database::connect(opts).await?;
    tracing::info!(database = %redact_url(&cfg.url), backend = ?db.get_database_backend(), "database connected");
    Ok(db)
}

/// SQLite keeps memory statistics by default, which takes one process-wide mutex around every
/// allocation it makes (each value of each row sqlx reads is copied out with one): measured,
/// 8% of a `GET` of sources. Nothing here reads them. The setting only takes before SQLite
/// initializes, so this runs once, before the first connection; later it is refused, harmlessly.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use libsqlite3_sys::{SQLITE_CONFIG_MEMSTATUS, sqlite3_config};
        // SAFETY: MEMSTATUS takes one int; no other thread uses SQLite before the first connect.
        let _ = unsafe { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
    });
}

/// What every SQLite connection gets once opened: stable plans, and with `wal_full` its
/// checkpoints left to the checkpointer.
async fn prepare_sqlite(
    conn: &mut sqlx::SqliteConnection,
    wal_full: Option<&'static WalFull>,
) -> Result<(), sqlx::Error> {
    keep_sqlite_plans(conn).await?;
    if let Some(full) = wal_full {
        wal::report_to(conn, full).await?;
    }
    Ok(())
}

/// Turns on SQLite's query planner stability guarantee for one connection. Without it, a
/// statement whose `LIMIT` is a bound parameter (every `.one()` sea-orm runs) is planned
/// again from its SQL text on every execution, because SQLite plans for the bound value and
/// marks the statement stale when the value is bound anew: measured in a reconnect storm,
/// 10,020 re-preparations for 10,215 steps. Nothing here relies on plans that depend on
/// bound values.
async fn keep_sqlite_plans(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, SQLITE_OK, sqlite3_db_config};
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `db` is this connection's open handle, locked for us until `handle` drops;
    // ENABLE_QPSG takes an int (1: on) and an optional int pointer for the new value.
    let rc = unsafe {
        sqlite3_db_config(
            db.as_ptr(),
            SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    if rc == SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!("SQLite refused SQLITE_DBCONFIG_ENABLE_QPSG (code {rc})").into(),
        ))
    }
}

/// Held while this node migrates and seeds: nodes started together on an empty PostgreSQL
/// database take turns (an advisory lock, on a connection of its own so that it is held and
/// released by the same session; a node that dies holding it releases it with its session).
pub struct StartupLock(Option<sqlx::PgConnection>);

const STARTUP_LOCK_KEY: i64 = 0x5359_4e43_5343_5231; // "SYNCSCR1"

pub async fn startup_lock(db: &DatabaseConnection) -> Result<StartupLock, sea_orm::DbErr> {
    use sea_orm::sqlx::Connection;
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(StartupLock(None));
    }
    let options = db.get_postgres_connection_pool().connect_options();
    let failed = |e: sqlx::Error| sea_orm::DbErr::Custom(format!("start-up lock: {e}"));
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(failed)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(STARTUP_LOCK_KEY)
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    Ok(StartupLock(Some(conn)))
}

impl StartupLock {
    pub async fn release(self) {
        use sea_orm::sqlx::Connection;
        if let Some(conn) = self.0 {
            let _ = conn.close().await;
        }
    }
}

/// SQLite serves one node: the serving process holds an exclusive lock on the database file
/// for as long as it runs, and a second one is refused at start.
pub fn claim_sqlite_file(cfg: &DatabaseSettings) -> Result<Option<std::fs::File>, sea_orm::DbErr> {
    let Some(path) = sqlite_path(&cfg.url) else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| sea_orm::DbErr::Custom(format!("cannot open {path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(sea_orm::DbErr::Custom(format!(
            "{path} is in use by another syncscript process; SQLite serves one node (use PostgreSQL for several)"
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(sea_orm::DbErr::Custom(format!("cannot lock {path}: {e}")))
        }
    }
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let pending = Migrator::get_pending_migrations(db).await?.len();
    if pending > 0 {
        tracing::info!(pending, "applying migrations");
    }
    Migrator::up(db, None).await
}

pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ENABLE_QPSG reads on one connection (1: on).
    async fn qpsg(conn: &mut sqlx::SqliteConnection) -> std::ffi::c_int {
        use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, sqlite3_db_config};
        let mut handle = conn.lock_handle().await.unwrap();
        let mut value: std::ffi::c_int = -1;
        // SAFETY: the handle is locked for us; -1 asks for the value without changing it.
        unsafe {
            sqlite3_db_config(
                handle.as_raw_handle().as_ptr(),
                SQLITE_DBCONFIG_ENABLE_QPSG,
                -1 as std::ffi::c_int,
                &mut value as *mut std::ffi::c_int,
            );
        }
        value
    }

    #[tokio::test]
    async fn every_sqlite_connection_keeps_its_plans() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("plans.db").display()),
            max_connections: 3,
            connect_timeout: Duration::from_secs(5),
        };
        let db = connect(&cfg).await.unwrap();
        let pool = db.get_sqlite_connection_pool();
        // Three at once: the pool opens a connection for each.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            assert_eq!(qpsg(conn).await, 1, "a pooled SQLite connection re-plans");
        }
    }
}
