//! Worker registrations.

use super::{json, read, SqliteStore};
use crate::store::cols::WorkerCols;
use crate::store::{NewWorker, Result, WorkerRow, WorkerStore};
use async_trait::async_trait;

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(&self, n: &NewWorker<'_>, now: i64) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query(
            "INSERT INTO workers (id, name, capacity, registered_at, last_seen_at, \
             credential_hash, artifact_root, labels, gpus) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(n.id)
        .bind(n.name)
        .bind(n.capacity as i64)
        .bind(now)
        .bind(now)
        .bind(n.credential_hash)
        .bind(n.artifact_root)
        .bind((!n.labels.is_empty()).then(|| json(n.labels)))
        .bind(n.gpus as i64)
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
            .map(|r| read::<_, WorkerCols>(r).and_then(WorkerRow::try_from))
            .transpose()
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY last_seen_at DESC LIMIT 1000")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| read::<_, WorkerCols>(r).and_then(WorkerRow::try_from))
            .collect()
    }
}
