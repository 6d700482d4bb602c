//! Worker registrations.

use super::{Result, Store};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct WorkerRow {
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub registered_at: i64,
    pub last_seen_at: i64,
}

fn worker_row(r: &sqlx::sqlite::SqliteRow) -> WorkerRow {
    WorkerRow {
        id: r.get("id"),
        name: r.get("name"),
        capacity: r.get::<i64, _>("capacity") as u32,
        registered_at: r.get("registered_at"),
        last_seen_at: r.get("last_seen_at"),
    }
}

impl Store {
    pub async fn register_worker(
        &self,
        id: &str,
        name: &str,
        capacity: u32,
        now: i64,
    ) -> Result<()> {
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

    pub async fn get_worker(&self, id: &str) -> Result<Option<WorkerRow>> {
        let row = sqlx::query("SELECT * FROM workers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(worker_row))
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY last_seen_at DESC LIMIT 1000")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(worker_row).collect())
    }
}
