//! Task logs: appended in batches by workers, read back in pages.

use super::{read, SqliteStore};
use crate::store::cols::{stream_name, LogCols};
use crate::store::{LogCursor, LogRow, LogStore, Result};
use async_trait::async_trait;
use sluice_sdk::api::LogLine;
use sqlx::{QueryBuilder, Sqlite};

pub(super) async fn insert(tx: &mut sqlx::SqliteConnection, rows: &[LogRow]) -> Result<()> {
    for chunk in rows.chunks(4000) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR IGNORE INTO logs (run_id, task_idx, attempt, seq, ts, stream, line) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.run_id)
                .push_bind(r.task_idx as i64)
                .push_bind(r.attempt as i64)
                .push_bind(r.seq as i64)
                .push_bind(r.ts)
                .push_bind(stream_name(r.stream))
                .push_bind(&r.line);
        });
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn read_logs(
        &self,
        run_id: &str,
        task_idx: usize,
        task_name: &str,
        after: LogCursor,
        limit: u32,
    ) -> Result<Vec<(LogCursor, LogLine)>> {
        let (attempt, seq) = after.parts();
        let rows = sqlx::query(
            "SELECT attempt, seq, ts, stream, line FROM logs WHERE run_id = ? AND task_idx = ? \
             AND (attempt > ? OR (attempt = ? AND seq > ?)) ORDER BY attempt, seq LIMIT ?",
        )
        .bind(run_id)
        .bind(task_idx as i64)
        .bind(attempt)
        .bind(attempt)
        .bind(seq)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| read::<_, LogCols>(r)?.line(task_name))
            .collect()
    }
}
