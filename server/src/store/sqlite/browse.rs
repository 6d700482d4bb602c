//! Runs organised: the run list (filtered, sorted, paged, with each run's progress), archiving
//! and deleting runs, and an artifact's lineage across runs.

use super::{col, SqliteStore};
use crate::store::cols::{artifact_use, corrupt, run_row};
use crate::store::{Result, RunFilter, RunRow, RunSort};
use sluice_sdk::api::{ArtifactUse, StepCount};
use sqlx::{QueryBuilder, Sqlite};

/// A task that runs a container: its kind is `step` (rows from before kinds were kept: it has
/// an image).
const IS_STEP: &str =
    "coalesce(json_extract(t.shape, '$.kind'), CASE WHEN t.image != '' THEN 'step' END) = 'step'";

pub(super) async fn list_runs(s: &SqliteStore, f: &RunFilter) -> Result<Vec<RunRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
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
    match &f.search {
        // Three characters or more: the trigram index (case-insensitive).
        Some(s) if s.chars().count() >= 3 => {
            q.push(
                " AND rowid IN (SELECT rowid FROM runs_name_trigram WHERE runs_name_trigram MATCH ",
            )
            .push_bind(format!("\"{}\"", s.replace('"', "\"\"")))
            .push(")");
        }
        Some(s) => {
            q.push(" AND instr(lower(name), lower(")
                .push_bind(s.clone())
                .push(")) > 0");
        }
        None => {}
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
        q.push(" AND EXISTS (SELECT 1 FROM json_each(runs.labels) WHERE key = ")
            .push_bind(k.clone())
            .push(" AND value = ")
            .push_bind(v.clone())
            .push(")");
    }
    let dir = if f.descending { "DESC" } else { "ASC" };
    if f.sort == RunSort::Created {
        // Run ids order as their creation: pages continue after the last id seen.
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
        let column = |c: &'static str, name: &str| (c, Some(format!("$.\"{name}\"")));
        let (key, path) = match &f.sort {
            RunSort::Name => ("name", None),
            RunSort::State => ("state", None),
            RunSort::Pipeline => ("pipeline_name", None),
            // Running runs have no duration yet: they sort as the longest.
            RunSort::Duration => (
                "coalesce(finished_at, 9223372036854775807) - created_at",
                None,
            ),
            RunSort::Param(n) => column("params", n),
            RunSort::Metric(n) => column("metrics", n),
            RunSort::Created => unreachable!("handled above"),
        };
        match path {
            // A value in a JSON column: runs without it last, whichever the direction.
            Some(path) => {
                q.push(format!(" ORDER BY json_extract({key}, "))
                    .push_bind(path.clone())
                    .push(format!(") IS NULL, json_extract({key}, "))
                    .push_bind(path)
                    .push(format!(") {dir}, id DESC"));
            }
            None => {
                q.push(format!(" ORDER BY {key} {dir}, id DESC"));
            }
        }
    }
    q.push(" LIMIT ").push_bind(f.limit as i64);
    if f.sort != RunSort::Created && f.offset > 0 {
        q.push(" OFFSET ")
            .push_bind(i64::try_from(f.offset).unwrap_or(i64::MAX));
    }
    let rows = q.build().fetch_all(&s.pool).await?;
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

pub(super) async fn set_archived(s: &SqliteStore, id: &str, archived: bool) -> Result<bool> {
    let mut w = s.writer().await?;
    let n = sqlx::query("UPDATE runs SET archived = ? WHERE id = ?")
        .bind(archived)
        .bind(id)
        .execute(w.conn())
        .await?
        .rows_affected();
    w.done();
    Ok(n > 0)
}

pub(super) async fn delete_run(s: &SqliteStore, id: &str) -> Result<bool> {
    let mut w = s.writer().await?;
    let mut tx = sqlx::Connection::begin(w.conn()).await?;
    for sql in [
        "DELETE FROM logs WHERE run_id = ?",
        "DELETE FROM artifacts WHERE run_id = ?",
        "DELETE FROM artifact_inputs WHERE run_id = ?",
        "DELETE FROM cache WHERE run_id = ?",
        "DELETE FROM idempotency_keys WHERE run_id = ?",
        "DELETE FROM tasks WHERE run_id = ?",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    let n = sqlx::query("DELETE FROM runs WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    w.done();
    Ok(n > 0)
}

pub(super) async fn lineage(
    s: &SqliteStore,
    uri: &str,
    limit: u32,
) -> Result<(Vec<ArtifactUse>, Vec<ArtifactUse>)> {
    let limit = i64::from(limit);
    let producers = sqlx::query(
        "SELECT a.run_id, a.name, a.digest, a.size, a.created_at AS at, r.name AS run_name, \
         r.pipeline_name, t.name AS task, t.state \
         FROM artifacts a JOIN runs r ON r.id = a.run_id \
         JOIN tasks t ON t.run_id = a.run_id AND t.idx = a.task_idx \
         WHERE a.uri = ? ORDER BY a.created_at, a.run_id LIMIT ?",
    )
    .bind(uri)
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    let consumers = sqlx::query(
        "SELECT i.run_id, i.name, NULL AS digest, NULL AS size, t.finished_at AS at, \
         r.name AS run_name, r.pipeline_name, t.name AS task, t.state \
         FROM artifact_inputs i JOIN runs r ON r.id = i.run_id \
         JOIN tasks t ON t.run_id = i.run_id AND t.idx = i.task_idx \
         WHERE i.uri = ? ORDER BY t.finished_at DESC, i.run_id LIMIT ?",
    )
    .bind(uri)
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    let uses = |rows: Vec<sqlx::sqlite::SqliteRow>| -> Result<Vec<ArtifactUse>> {
        rows.iter().map(artifact_use).collect()
    };
    Ok((uses(producers)?, uses(consumers)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunStore, Store, TaskRow, TaskStatic, WriteBatch};
    use sluice_sdk::api::{RunState, TaskShape, TaskState};
    use std::sync::Arc;

    /// A run that ended before runs kept their metrics gets them from its steps' numeric
    /// outputs (migration 8), and the run list shows them.
    #[tokio::test]
    async fn runs_from_before_metrics_were_kept_get_their_steps_numeric_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let digest = format!("sha256:{}", "0".repeat(64));
        let mut b = WriteBatch::default();
        b.sources.push((digest.clone(), "name: old".into()));
        b.new_runs.push(RunRow {
            id: "run-1".into(),
            name: "old".into(),
            pipeline_name: "old".into(),
            pipeline_version_id: None,
            pipeline_version: None,
            digest,
            params: Default::default(),
            state: RunState::Succeeded,
            error: None,
            end_reason: None,
            created_at: 1,
            finished_at: Some(2),
            cache: true,
            outputs: Default::default(),
            inputs: Vec::new(),
            labels: Default::default(),
            archived: false,
            metrics: Default::default(),
            steps: None,
            experiment_id: crate::store::DEFAULT_EXPERIMENT.into(),
            schedule_id: None,
            scheduled_at: None,
        });
        for (idx, (name, state, outputs)) in [
            (
                "evaluate",
                TaskState::Succeeded,
                json_params(r#"{"accuracy": 0.9, "note": "x"}"#),
            ),
            ("broken", TaskState::Failed, json_params(r#"{"loss": 1.5}"#)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut t = sluice_engine::Task::new();
            t.state = state;
            t.attempt = 1;
            t.outputs.params = outputs;
            b.tasks.push(TaskRow {
                run_id: Arc::from("run-1"),
                idx,
                stat: Arc::new(TaskStatic::new(
                    name.into(),
                    "busybox".into(),
                    Vec::new(),
                    None,
                    TaskShape::default(),
                )),
                task: t,
            });
        }
        store.apply(&b).await.unwrap();
        sqlx::raw_sql(include_str!(
            "../../../../migrations/20261130000008_run_metrics_backfill.sql"
        ))
        .execute(&store.pool)
        .await
        .unwrap();
        let runs = store
            .list_runs(&RunFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&runs[0].metrics).unwrap(),
            serde_json::json!({"evaluate.accuracy": 0.9})
        );
        store.close().await;
    }

    fn json_params(s: &str) -> sluice_sdk::api::Params {
        serde_json::from_str(s).unwrap()
    }
}
