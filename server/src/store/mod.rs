//! The store: every SQL statement sluice runs. SQLite in WAL mode under the data directory; the
//! schema lives in `migrations/`. Writes are serialised (SQLite has one writer); reads run alongside.

mod logs;
mod pipelines;
mod runs;
mod workers;

pub use logs::{LogCursor, LogRow};
pub use runs::{
    CacheEntry, IdempotencyKey, RunFilter, RunRow, StoredRun, TaskRow, TaskStatic, WriteBatch,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
pub use workers::WorkerRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The database could not be written because its disk is full (SQLite's `SQLITE_FULL`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => d.code().as_deref() == Some("13"),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    /// Reads.
    pool: SqlitePool,
    writer: Arc<Writer>,
}

/// The one connection writes go through (SQLite has one writer). A connection whose write
/// failed (on a full disk, say) may still hold its transaction, and with it the database's write
/// lock: it is closed, and the next write opens a fresh one. So the store recovers by itself
/// once the cause is gone.
struct Writer {
    opts: SqliteConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::SqliteConnection>>,
}

/// The writer, held: [`WriteGuard::done`] once the write succeeded, else its connection is
/// closed when the guard goes.
pub(crate) struct WriteGuard<'a> {
    conn: tokio::sync::MutexGuard<'a, Option<sqlx::SqliteConnection>>,
    done: bool,
}

impl WriteGuard<'_> {
    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.conn.as_mut().expect("the writer is open while held")
    }

    /// The write went through: the connection is kept for the next.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.take();
        }
    }
}

impl Store {
    /// Opens (creating if needed) `sluice.db` under `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(data_dir.join("sluice.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-32000")
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "20000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Store {
            pool,
            writer: Arc::new(Writer {
                opts,
                conn: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The writer, opened if it is not (writes are serialised through it).
    pub(crate) async fn writer(&self) -> Result<WriteGuard<'_>> {
        use sqlx::ConnectOptions;
        let mut conn = self.writer.conn.lock().await;
        if conn.is_none() {
            *conn = Some(self.writer.opts.connect().await?);
        }
        Ok(WriteGuard { conn, done: false })
    }

    /// Copies the write-ahead log back into the database file. Run in the background (see
    /// [`Store::checkpoint_loop`]) so that commits on the hot path never pay for it.
    pub async fn checkpoint(&self) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(w.conn())
            .await?;
        w.done();
        Ok(())
    }

    /// Checkpoints every `every`, forever; spawn it once per server.
    pub async fn checkpoint_loop(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.checkpoint().await {
                tracing::warn!(error = %e, "database checkpoint failed");
            }
        }
    }

    pub async fn close(&self) {
        if let Some(c) = self.writer.conn.lock().await.take() {
            let _ = sqlx::Connection::close(c).await;
        }
        self.pool.close().await;
    }
}

/// A column of a row, or why it does not read as `T`: a corrupt row is an error, never a panic.
fn col<'r, T>(r: &'r sqlx::sqlite::SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    use sqlx::Row;
    r.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column `{name}`: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: Option<String>, what: &str) -> Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}
