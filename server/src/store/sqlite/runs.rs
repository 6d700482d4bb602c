//! Runs and their tasks: batched writes of what the engine changed, and the reads behind the API.

use super::{col, json, read, SqliteStore};
use crate::store::cols::{
    artifacts_made, attach_artifacts, corrupt, inputs_read, is_fresh, push_artifact,
    push_fresh_task, push_task, run_row, task_row, ArtifactCols, CacheCols, IdempotencyCols,
    ACTIVE_STATES, ARTIFACT_COLS, FRESH_TASK_COLS, TASK_COLS,
};
use crate::store::{
    CacheEntry, IdempotencyKey, Result, RunFilter, RunRow, RunStore, StoredRun, TaskRow, WriteBatch,
};
use async_trait::async_trait;
use sluice_sdk::api::{ArtifactUse, RunState};
use sluice_spec::state::EndReason;
use sqlx::{QueryBuilder, Sqlite};

impl SqliteStore {
    async fn tasks_of(&self, run_id: &str) -> Result<Vec<TaskRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE run_id = ? ORDER BY idx"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows.iter().map(task_row).collect::<Result<Vec<_>>>()?;
        let arts = sqlx::query("SELECT task_idx, name, uri, size, digest, metadata, kind FROM artifacts WHERE run_id = ? ORDER BY task_idx, name").bind(run_id).fetch_all(&self.pool).await?;
        let arts = arts
            .iter()
            .map(read::<_, ArtifactCols>)
            .collect::<Result<Vec<_>>>()?;
        attach_artifacts(&mut tasks, arts)?;
        Ok(tasks)
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    /// Writes a batch in one transaction.
    async fn apply(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        for (digest, yaml) in &batch.sources {
            sqlx::query("INSERT OR IGNORE INTO sources (digest, yaml) VALUES (?, ?)")
                .bind(digest)
                .bind(yaml)
                .execute(&mut *tx)
                .await?;
        }
        for r in &batch.new_runs {
            sqlx::query(
                "INSERT INTO runs (id, name, pipeline_name, pipeline_version_id, pipeline_version, digest, params, state, error, end_reason, created_at, finished_at, cache, labels, metrics, experiment_id, schedule_id, scheduled_at, inputs) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.pipeline_name)
            .bind(&r.pipeline_version_id)
            .bind(r.pipeline_version.map(|v| v as i64))
            .bind(&r.digest)
            .bind(json(&r.params))
            .bind(r.state.as_str())
            .bind(&r.error)
            .bind(r.end_reason.map(EndReason::as_str))
            .bind(r.created_at)
            .bind(r.finished_at)
            .bind(r.cache)
            .bind((!r.labels.is_empty()).then(|| json(&r.labels)))
            .bind((!r.metrics.is_empty()).then(|| json(&r.metrics)))
            .bind(&r.experiment_id)
            .bind(&r.schedule_id)
            .bind(r.scheduled_at)
            .bind((!r.inputs.is_empty()).then(|| json(&r.inputs)))
            .execute(&mut *tx)
            .await?;
        }
        // A schedule's firing is written with its run: a due time never fires twice (the
        // runs' unique (schedule_id, scheduled_at) refuses a second run for it).
        for f in &batch.fired {
            sqlx::query("UPDATE schedules SET last_fired_at = ?, next_at = ?, last_error = NULL WHERE id = ?")
                .bind(f.at)
                .bind(f.next_at)
                .bind(&f.schedule_id)
                .execute(&mut *tx)
                .await?;
        }
        for k in &batch.idempotency {
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency_keys (key, request, run_id, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(&k.key)
            .bind(&k.request)
            .bind(&k.run_id)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for c in &batch.cache {
            sqlx::query(
                "INSERT OR REPLACE INTO cache (key, image_digest, run_id, task, outputs, artifacts, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.key)
            .bind(&c.image_digest)
            .bind(&c.run_id)
            .bind(&c.task)
            .bind(json(&c.outputs))
            .bind(json(&c.artifacts))
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for r in &batch.runs {
            sqlx::query(
                "UPDATE runs SET state = ?, error = ?, end_reason = ?, finished_at = ?, outputs = ?, metrics = ? WHERE id = ?",
            )
            .bind(r.state.as_str())
            .bind(&r.error)
            .bind(r.end_reason.map(EndReason::as_str))
                .bind(r.finished_at)
                .bind((!r.outputs.is_empty()).then(|| json(&r.outputs)))
                .bind((!r.metrics.is_empty()).then(|| json(&r.metrics)))
                .bind(&r.id)
                .execute(&mut *tx)
                .await?;
        }
        // A new run's pending tasks are written in short rows (everything else is still unset);
        // all other tasks replace what is stored.
        let (fresh, changed): (Vec<&TaskRow>, Vec<&TaskRow>) =
            batch.tasks.iter().partition(|r| is_fresh(batch, r));
        for chunk in fresh.chunks(4000) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("INSERT INTO tasks ({FRESH_TASK_COLS}) "));
            q.push_values(chunk, |b, r| push_fresh_task(b, r));
            q.build().execute(&mut *tx).await?;
        }
        for chunk in changed.chunks(1000) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("INSERT OR REPLACE INTO tasks ({TASK_COLS}) "));
            q.push_values(chunk, |b, r| push_task(b, r));
            q.build().execute(&mut *tx).await?;
        }
        for chunk in artifacts_made(batch).chunks(2000) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "INSERT OR REPLACE INTO artifacts ({ARTIFACT_COLS}) "
            ));
            q.push_values(chunk, push_artifact);
            q.build().execute(&mut *tx).await?;
        }
        // Lineage: what each task that ran to its end read.
        for chunk in inputs_read(batch).chunks(2000) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO artifact_inputs (uri, run_id, task_idx, name) ",
            );
            q.push_values(chunk, |mut b, (run, idx, a)| {
                b.push_bind(&a.uri)
                    .push_bind(*run)
                    .push_bind(*idx as i64)
                    .push_bind(&a.name);
            });
            q.build().execute(&mut *tx).await?;
        }
        super::logs::insert(&mut tx, &batch.logs).await?;
        for (id, at) in &batch.workers_seen {
            sqlx::query("UPDATE workers SET last_seen_at = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        w.done();
        Ok(())
    }

    async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        super::browse::list_runs(self, f).await
    }

    async fn set_archived(&self, id: &str, archived: bool) -> Result<bool> {
        super::browse::set_archived(self, id, archived).await
    }

    async fn delete_run(&self, id: &str) -> Result<bool> {
        super::browse::delete_run(self, id).await
    }

    async fn lineage(&self, uri: &str, limit: u32) -> Result<(Vec<ArtifactUse>, Vec<ArtifactUse>)> {
        super::browse::lineage(self, uri, limit).await
    }

    /// The newest cached result under `key` made at or after `since` (milliseconds), for any
    /// image digest or for `digest` only.
    async fn cached(
        &self,
        key: &str,
        digest: Option<&str>,
        since: i64,
    ) -> Result<Option<CacheEntry>> {
        let Some(r) = sqlx::query(
            "SELECT * FROM cache WHERE key = ? AND created_at >= ? AND (? IS NULL OR image_digest = ?) \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(key)
        .bind(since)
        .bind(digest)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        read::<_, CacheCols>(&r)?.entry().map(Some)
    }

    /// What an idempotency key was used for, if it was.
    async fn idempotency_key(&self, key: &str) -> Result<Option<IdempotencyKey>> {
        let Some(r) = sqlx::query("SELECT * FROM idempotency_keys WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(read::<_, IdempotencyCols>(&r)?.into()))
    }

    async fn get_run(&self, id: &str) -> Result<Option<StoredRun>> {
        let Some(row) = sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let row = run_row(&row)?;
        let tasks = self.tasks_of(&row.id).await?;
        Ok(Some(StoredRun { row, tasks }))
    }

    /// The ids of the runs that have not ended, for the scheduler to take up again after a
    /// restart (each is read with [`Store::get_run`], so that one that cannot be read stops
    /// only itself).
    async fn active_run_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(&format!(
            "SELECT id FROM runs WHERE state IN {ACTIVE_STATES} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| col(r, "id")).collect()
    }

    /// Forgets the idempotency keys made before `before`. Returns how many.
    async fn forget_idempotency_keys(&self, before: i64) -> Result<u64> {
        let mut w = self.writer().await?;
        let n = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before)
            .execute(w.conn())
            .await?
            .rows_affected();
        w.done();
        Ok(n)
    }

    async fn count_runs_by_state(&self) -> Result<Vec<(RunState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM runs GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(s, n)| {
                RunState::parse(&s)
                    .map(|st| (st, n.max(0) as u64))
                    .ok_or_else(|| corrupt("run state", &s))
            })
            .collect()
    }

    /// Ends a run that cannot go on (its stored state no longer reads back), with the reason.
    async fn fail_run(&self, id: &str, error: &str, at: i64) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query("UPDATE runs SET state = 'failed', error = ?, end_reason = 'unreadable', finished_at = ? WHERE id = ?")
            .bind(error)
            .bind(at)
            .bind(id)
            .execute(w.conn())
            .await?;
        w.done();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn idempotency_keys_past_their_window_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let key = |key: &str, created_at| IdempotencyKey {
            key: key.into(),
            request: "digest".into(),
            run_id: format!("run-{key}"),
            created_at,
        };
        let batch = WriteBatch {
            idempotency: vec![key("old", 1_000), key("new", 5_000)],
            ..Default::default()
        };
        store.apply(&batch).await.unwrap();
        assert_eq!(store.forget_idempotency_keys(3_000).await.unwrap(), 1);
        assert_eq!(store.idempotency_key("old").await.unwrap(), None);
        assert_eq!(
            store.idempotency_key("new").await.unwrap(),
            Some(key("new", 5_000))
        );
        store.close().await;
    }
}
