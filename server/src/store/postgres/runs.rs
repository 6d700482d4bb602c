//! Runs and their tasks in PostgreSQL: a scheduler step's batch in one transaction, the run list
//! (filtered, sorted, paged), archiving and deleting, lineage.

use super::PgStore;
use crate::store::cols::{
    artifact_use, artifacts_made, attach_artifacts, col, corrupt, inputs_read, is_fresh, json,
    push_artifact, push_fresh_task, read, run_row, task_row, ArtifactCols, CacheCols,
    IdempotencyCols, TaskColumns, ACTIVE_STATES, ARTIFACT_COLS, FRESH_TASK_COLS, TASK_COLS,
};
use crate::store::{
    CacheEntry, IdempotencyKey, Result, RunFilter, RunRow, RunSort, RunStore, StoredRun, TaskRow,
    WriteBatch,
};
use async_trait::async_trait;
use sluice_sdk::api::{ArtifactUse, RunState, StepCount};
use sluice_spec::state::EndReason;
use sqlx::{Postgres, QueryBuilder};
use std::collections::HashMap;

/// `SET col = EXCLUDED.col` for each of `cols` but the key's: an upsert that replaces the row.
fn replace_all(cols: &str, key: &[&str]) -> String {
    cols.split(", ")
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A task that runs a container: its kind is `step`.
const IS_STEP: &str =
    "coalesce(t.shape::jsonb ->> 'kind', CASE WHEN t.image != '' THEN 'step' END) = 'step'";

impl PgStore {
    async fn tasks_of(&self, run_id: &str) -> Result<Vec<TaskRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE run_id = $1 ORDER BY idx"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows.iter().map(task_row).collect::<Result<Vec<_>>>()?;
        let arts = sqlx::query("SELECT task_idx, name, uri, size, digest, metadata, kind FROM artifacts WHERE run_id = $1 ORDER BY task_idx, name")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        let arts = arts
            .iter()
            .map(read::<_, ArtifactCols>)
            .collect::<Result<Vec<_>>>()?;
        attach_artifacts(&mut tasks, arts)?;
        Ok(tasks)
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn apply(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (digest, yaml) in &batch.sources {
            sqlx::query(
                "INSERT INTO sources (digest, yaml) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(digest)
            .bind(yaml)
            .execute(&mut *tx)
            .await?;
        }
        for r in &batch.new_runs {
            sqlx::query(
                "INSERT INTO runs (id, name, pipeline_name, pipeline_version_id, pipeline_version, digest, params, state, error, end_reason, created_at, finished_at, cache, labels, metrics, experiment_id, schedule_id, scheduled_at, inputs) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
            sqlx::query("UPDATE schedules SET last_fired_at = $1, next_at = $2, last_error = NULL WHERE id = $3")
                .bind(f.at)
                .bind(f.next_at)
                .bind(&f.schedule_id)
                .execute(&mut *tx)
                .await?;
        }
        for k in &batch.idempotency {
            sqlx::query(
                "INSERT INTO idempotency_keys (key, request, run_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET request = EXCLUDED.request, run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at",
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
                "INSERT INTO cache (key, image_digest, run_id, task, outputs, artifacts, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key, image_digest) DO UPDATE SET \
                 run_id = EXCLUDED.run_id, task = EXCLUDED.task, outputs = EXCLUDED.outputs, \
                 artifacts = EXCLUDED.artifacts, created_at = EXCLUDED.created_at",
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
                "UPDATE runs SET state = $1, error = $2, end_reason = $3, finished_at = $4, outputs = $5, metrics = $6 WHERE id = $7",
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
        // One statement may not change a row twice: each task's last row in the batch counts.
        let mut last: HashMap<(&str, usize), &TaskRow> = HashMap::new();
        for r in &batch.tasks {
            last.insert((&*r.run_id, r.idx), r);
        }
        let mut rows: Vec<&TaskRow> = last.into_values().collect();
        rows.sort_by(|a, b| (&*a.run_id, a.idx).cmp(&(&*b.run_id, b.idx)));
        let (fresh, changed): (Vec<&TaskRow>, Vec<&TaskRow>) =
            rows.into_iter().partition(|r| is_fresh(batch, r));
        for chunk in fresh.chunks(4000) {
            let mut q: QueryBuilder<Postgres> =
                QueryBuilder::new(format!("INSERT INTO tasks ({FRESH_TASK_COLS}) "));
            q.push_values(chunk, |b, r| push_fresh_task(b, r));
            q.build().execute(&mut *tx).await?;
        }
        if !changed.is_empty() {
            let mut c = TaskColumns::default();
            for r in &changed {
                c.push(r);
            }
            let replace = replace_all(TASK_COLS, &["run_id", "idx"]);
            sqlx::query(&format!(
                "INSERT INTO tasks ({TASK_COLS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], \
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], \
                 $9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::int4[], \
                 $15::text[], $16::bigint[], $17::bigint[], $18::bigint[], $19::text[], \
                 $20::bigint[], $21::text[], $22::bool[], $23::text[], $24::text[], $25::text[], \
                 $26::text[]) ON CONFLICT (run_id, idx) DO UPDATE SET {replace}"
            ))
            .bind(c.run_id)
            .bind(c.idx)
            .bind(c.name)
            .bind(c.image)
            .bind(c.depends_on)
            .bind(c.state)
            .bind(c.attempt)
            .bind(c.lease_id)
            .bind(c.worker_id)
            .bind(c.cancel_requested)
            .bind(c.inputs)
            .bind(c.spec)
            .bind(c.outputs)
            .bind(c.exit_code)
            .bind(c.error)
            .bind(c.ready_at)
            .bind(c.started_at)
            .bind(c.finished_at)
            .bind(c.image_digest)
            .bind(c.retry_at)
            .bind(c.attempts)
            .bind(c.condition_false)
            .bind(c.cached_from)
            .bind(c.display_name)
            .bind(c.shape)
            .bind(c.address)
            .execute(&mut *tx)
            .await?;
        }
        let mut made: HashMap<(&str, usize, &str), _> = HashMap::new();
        for a in artifacts_made(batch) {
            made.insert((a.0, a.1, a.2.name.as_str()), a);
        }
        let made: Vec<_> = made.into_values().collect();
        let replace = replace_all(ARTIFACT_COLS, &["run_id", "task_idx", "name"]);
        for chunk in made.chunks(2000) {
            let mut q: QueryBuilder<Postgres> =
                QueryBuilder::new(format!("INSERT INTO artifacts ({ARTIFACT_COLS}) "));
            q.push_values(chunk, push_artifact);
            q.push(format!(
                " ON CONFLICT (run_id, task_idx, name) DO UPDATE SET {replace}"
            ));
            q.build().execute(&mut *tx).await?;
        }
        for chunk in inputs_read(batch).chunks(2000) {
            let mut q: QueryBuilder<Postgres> =
                QueryBuilder::new("INSERT INTO artifact_inputs (uri, run_id, task_idx, name) ");
            q.push_values(chunk, |mut b, (run, idx, a)| {
                b.push_bind(&a.uri)
                    .push_bind(*run)
                    .push_bind(*idx as i64)
                    .push_bind(&a.name);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        super::access::insert_logs(&mut tx, &batch.logs).await?;
        for (id, at) in &batch.workers_seen {
            sqlx::query("UPDATE workers SET last_seen_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT runs.*, \
             (SELECT count(*) FROM tasks t WHERE t.run_id = runs.id AND {IS_STEP}) AS steps_total, \
             (SELECT count(*) FROM tasks t WHERE t.run_id = runs.id AND {IS_STEP} \
                AND t.state IN ('succeeded', 'failed', 'skipped', 'cancelled')) AS steps_done \
             FROM runs WHERE 1 = 1"
        ));
        if let Some(st) = f.state {
            q.push(" AND state = ").push_bind(st.as_str());
        }
        if let Some(p) = &f.pipeline {
            q.push(" AND pipeline_name = ").push_bind(p.clone());
        }
        if let Some(s) = &f.search {
            // Case-insensitive, as SQLite's trigram search; `%`, `_` and `\` stand for themselves.
            let escaped = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q.push(" AND name ILIKE ")
                .push_bind(format!("%{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        if let Some(a) = f.archived {
            q.push(" AND archived = ").push_bind(a);
        }
        if let Some(e) = &f.experiment {
            q.push(" AND experiment_id = ").push_bind(e.clone());
        }
        if let Some(s) = &f.schedule {
            q.push(" AND schedule_id = ").push_bind(s.clone());
        }
        crate::store::catalog_sql::push_predicates(&mut q, &f.predicates);
        if let Some(t) = f.created_after {
            q.push(" AND created_at >= ").push_bind(t);
        }
        if let Some(t) = f.created_before {
            q.push(" AND created_at < ").push_bind(t);
        }
        if let Some((k, v)) = &f.label {
            q.push(" AND (runs.labels::jsonb ->> ")
                .push_bind(k.clone())
                .push(") = ")
                .push_bind(v.clone());
        }
        let dir = if f.descending { "DESC" } else { "ASC" };
        if f.sort == RunSort::Created {
            if let Some(b) = &f.before {
                q.push(if f.descending {
                    " AND id < "
                } else {
                    " AND id > "
                })
                .push_bind(b.clone());
            }
            q.push(format!(" ORDER BY id {dir}"));
        } else {
            let (key, field) = match &f.sort {
                RunSort::Name => ("name", None),
                RunSort::State => ("state", None),
                RunSort::Pipeline => ("pipeline_name", None),
                RunSort::Duration => (
                    "coalesce(finished_at, 9223372036854775807) - created_at",
                    None,
                ),
                RunSort::Param(n) => ("params", Some(n.clone())),
                RunSort::Metric(n) => ("metrics", Some(n.clone())),
                RunSort::Created => unreachable!("handled above"),
            };
            match field {
                // A value in a JSON column: runs without it last, whichever the direction.
                Some(field) => {
                    q.push(format!(" ORDER BY ({key}::jsonb -> "))
                        .push_bind(field.clone())
                        .push(format!(") IS NULL, ({key}::jsonb -> "))
                        .push_bind(field)
                        .push(format!(") {dir}, id DESC"));
                }
                None => {
                    // Byte order, as SQLite's.
                    let key = if matches!(f.sort, RunSort::Duration) {
                        key.to_string()
                    } else {
                        format!("{key} COLLATE \"C\"")
                    };
                    q.push(format!(" ORDER BY {key} {dir}, id DESC"));
                }
            }
        }
        q.push(" LIMIT ").push_bind(f.limit as i64);
        if f.sort != RunSort::Created && f.offset > 0 {
            q.push(" OFFSET ")
                .push_bind(i64::try_from(f.offset).unwrap_or(i64::MAX));
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let mut row = run_row(r)?;
                let count = |name: &str| -> Result<u32> {
                    let n: i64 = col(r, name)?;
                    u32::try_from(n).map_err(|_| corrupt(name, n))
                };
                row.steps = Some(StepCount {
                    done: count("steps_done")?,
                    total: count("steps_total")?,
                });
                Ok(row)
            })
            .collect()
    }

    async fn get_run(&self, id: &str) -> Result<Option<StoredRun>> {
        let Some(row) = sqlx::query("SELECT * FROM runs WHERE id = $1")
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

    async fn active_run_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT id FROM runs WHERE state IN {ACTIVE_STATES} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?)
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

    async fn fail_run(&self, id: &str, error: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE runs SET state = 'failed', error = $1, end_reason = 'unreadable', finished_at = $2 WHERE id = $3")
            .bind(error)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn cached(
        &self,
        key: &str,
        digest: Option<&str>,
        since: i64,
    ) -> Result<Option<CacheEntry>> {
        let Some(r) = sqlx::query(
            "SELECT * FROM cache WHERE key = $1 AND created_at >= $2 AND ($3::text IS NULL OR image_digest = $3) \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(key)
        .bind(since)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        read::<_, CacheCols>(&r)?.entry().map(Some)
    }

    async fn idempotency_key(&self, key: &str) -> Result<Option<IdempotencyKey>> {
        let Some(r) = sqlx::query("SELECT * FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(read::<_, IdempotencyCols>(&r)?.into()))
    }

    async fn forget_idempotency_keys(&self, before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn set_archived(&self, id: &str, archived: bool) -> Result<bool> {
        let n = sqlx::query("UPDATE runs SET archived = $1 WHERE id = $2")
            .bind(archived)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn delete_run(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM logs WHERE run_id = $1",
            "DELETE FROM artifacts WHERE run_id = $1",
            "DELETE FROM artifact_inputs WHERE run_id = $1",
            "DELETE FROM cache WHERE run_id = $1",
            "DELETE FROM idempotency_keys WHERE run_id = $1",
            "DELETE FROM tasks WHERE run_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn lineage(&self, uri: &str, limit: u32) -> Result<(Vec<ArtifactUse>, Vec<ArtifactUse>)> {
        let limit = i64::from(limit);
        let producers = sqlx::query(
            "SELECT a.run_id, a.name, a.digest, a.size, a.created_at AS at, r.name AS run_name, \
             r.pipeline_name, t.name AS task, t.state \
             FROM artifacts a JOIN runs r ON r.id = a.run_id \
             JOIN tasks t ON t.run_id = a.run_id AND t.idx = a.task_idx \
             WHERE a.uri = $1 ORDER BY a.created_at, a.run_id LIMIT $2",
        )
        .bind(uri)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let consumers = sqlx::query(
            "SELECT i.run_id, i.name, NULL::text AS digest, NULL::bigint AS size, t.finished_at AS at, \
             r.name AS run_name, r.pipeline_name, t.name AS task, t.state \
             FROM artifact_inputs i JOIN runs r ON r.id = i.run_id \
             JOIN tasks t ON t.run_id = i.run_id AND t.idx = i.task_idx \
             WHERE i.uri = $1 ORDER BY t.finished_at DESC, i.run_id LIMIT $2",
        )
        .bind(uri)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let uses = |rows: Vec<sqlx::postgres::PgRow>| -> Result<Vec<ArtifactUse>> {
            rows.iter().map(artifact_use).collect()
        };
        Ok((uses(producers)?, uses(consumers)?))
    }
}
