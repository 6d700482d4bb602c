//! Task logs: appended in batches by workers, read back in pages.

use super::{Result, Store};
use sluice_sdk::api::{format_ts, LogLine, Stream};
use sqlx::{QueryBuilder, Row, Sqlite};

#[derive(Debug, Clone)]
pub struct LogRow {
    pub run_id: String,
    pub task_idx: usize,
    pub attempt: u32,
    pub seq: u64,
    pub ts: i64,
    pub stream: Stream,
    pub line: String,
}

/// A position in a task's log across attempts: `(attempt << 32) | seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogCursor(pub u64);

impl LogCursor {
    pub fn of(attempt: u32, seq: u64) -> LogCursor {
        LogCursor(((attempt as u64) << 32) | (seq & 0xffff_ffff))
    }
    fn parts(self) -> (i64, i64) {
        ((self.0 >> 32) as i64, (self.0 & 0xffff_ffff) as i64)
    }
}

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
                .push_bind(match r.stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                })
                .push_bind(&r.line);
        });
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

impl Store {
    /// Up to `limit` lines of a task's log after `after`, in order.
    pub async fn read_logs(
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
        Ok(rows
            .iter()
            .map(|r| {
                let attempt = r.get::<i64, _>("attempt") as u32;
                let seq = r.get::<i64, _>("seq") as u64;
                let stream: String = r.get("stream");
                (
                    LogCursor::of(attempt, seq),
                    LogLine {
                        task: task_name.to_string(),
                        attempt,
                        seq,
                        ts: format_ts(r.get("ts")),
                        stream: if stream == "stderr" {
                            Stream::Stderr
                        } else {
                            Stream::Stdout
                        },
                        line: r.get("line"),
                    },
                )
            })
            .collect())
    }
}
