//! Worker registrations.

use super::{from_json, json, read, SqliteStore};
use crate::store::{NewWorker, Result, WorkerRow, WorkerStore};
use async_trait::async_trait;

#[derive(sqlx::FromRow)]
struct WorkerCols {
    id: String,
    name: String,
    #[sqlx(try_from = "i64")]
    capacity: u32,
    registered_at: i64,
    last_seen_at: i64,
    credential_hash: Option<String>,
    artifact_root: Option<String>,
    labels: Option<String>,
    #[sqlx(try_from = "i64")]
    gpus: u32,
}

impl TryFrom<WorkerCols> for WorkerRow {
    type Error = crate::store::StoreError;

    fn try_from(c: WorkerCols) -> Result<WorkerRow> {
        let WorkerCols {
            id,
            name,
            capacity,
            registered_at,
            last_seen_at,
            credential_hash,
            artifact_root,
            labels,
            gpus,
        } = c;
        Ok(WorkerRow {
            id,
            name,
            capacity,
            registered_at,
            last_seen_at,
            credential_hash,
            artifact_root,
            labels: from_json(labels, "worker labels")?.unwrap_or_default(),
            gpus,
        })
    }
}

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
            .map(|r| read::<WorkerCols>(r).and_then(WorkerRow::try_from))
            .transpose()
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY last_seen_at DESC LIMIT 1000")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| read::<WorkerCols>(r).and_then(WorkerRow::try_from))
            .collect()
    }
}
