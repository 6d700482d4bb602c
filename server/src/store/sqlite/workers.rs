//! Worker registrations.

use super::{read, SqliteStore};
use crate::store::{Result, WorkerRow, WorkerStore};
use async_trait::async_trait;

#[derive(sqlx::FromRow)]
struct WorkerCols {
    id: String,
    name: String,
    #[sqlx(try_from = "i64")]
    capacity: u32,
    registered_at: i64,
    last_seen_at: i64,
}

impl From<WorkerCols> for WorkerRow {
    fn from(c: WorkerCols) -> WorkerRow {
        let WorkerCols {
            id,
            name,
            capacity,
            registered_at,
            last_seen_at,
        } = c;
        WorkerRow {
            id,
            name,
            capacity,
            registered_at,
            last_seen_at,
        }
    }
}

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(&self, id: &str, name: &str, capacity: u32, now: i64) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query("INSERT INTO workers (id, name, capacity, registered_at, last_seen_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(capacity as i64)
            .bind(now)
            .bind(now)
            .execute(w.conn())
            .await?;
        w.done();
        Ok(())
    }

    async fn get_worker(&self, id: &str) -> Result<Option<WorkerRow>> {
        let row = sqlx::query("SELECT * FROM workers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| read::<WorkerCols>(r).map(WorkerRow::from))
            .transpose()
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY last_seen_at DESC LIMIT 1000")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| read::<WorkerCols>(r).map(WorkerRow::from))
            .collect()
    }
}
