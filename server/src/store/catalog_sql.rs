//! SQL both backends share: that of [`CatalogStore`](super::catalog::CatalogStore), written once
//! with `?` placeholders (each backend instantiates [`impl_catalog!`] with its own placeholder
//! style and writer), and the run list's conditions (Kubeflow's filters) on any query builder.

/// The columns a schedule is written with, in order.
pub(crate) const SCHEDULE_COLS: &str = "id, name, description, experiment_id, pipeline_id, pipeline_version_id, digest, params, labels, cron, timezone, interval_s, start_at, end_at, catchup, max_concurrency, enabled, cache, created_at, updated_at, last_fired_at, next_at, resumed_at, last_error";

/// Adds `AND` each of `preds` to a query, in either backend's SQL.
pub(crate) fn push_predicates<'a, DB>(
    q: &mut sqlx::QueryBuilder<'a, DB>,
    preds: &'a [super::Predicate],
) where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    for p in preds {
        let col = p.field.column();
        let op = match p.cmp {
            super::Cmp::Eq => "=",
            super::Cmp::Ne => "<>",
            super::Cmp::Gt => ">",
            super::Cmp::Ge => ">=",
            super::Cmp::Lt => "<",
            super::Cmp::Le => "<=",
            super::Cmp::In | super::Cmp::Contains => "",
        };
        match (&p.value, p.cmp) {
            (super::Operand::Text(t), super::Cmp::Contains) => {
                let escaped = t
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                q.push(format!(" AND lower({col}) LIKE "))
                    .push_bind(format!("%{escaped}%"))
                    .push(" ESCAPE '\\'");
            }
            (super::Operand::Texts(vs), _) => {
                q.push(format!(" AND {col} IN ("));
                let mut sep = q.separated(", ");
                for v in vs {
                    sep.push_bind(v.clone());
                }
                if vs.is_empty() {
                    sep.push("NULL");
                }
                q.push(")");
            }
            (super::Operand::Ints(vs), _) => {
                q.push(format!(" AND {col} IN ("));
                let mut sep = q.separated(", ");
                for v in vs {
                    sep.push_bind(*v);
                }
                if vs.is_empty() {
                    sep.push("NULL");
                }
                q.push(")");
            }
            (super::Operand::Text(t), _) => {
                q.push(format!(" AND {col} {op} ")).push_bind(t.clone());
            }
            (super::Operand::Int(i), _) => {
                q.push(format!(" AND {col} {op} ")).push_bind(*i);
            }
            (super::Operand::Bool(b), _) => {
                q.push(format!(" AND {col} {op} ")).push_bind(*b);
            }
        }
    }
}

/// Schedules' rows read back.
pub(crate) fn schedules<'r, R: sqlx::Row>(rows: &'r [R]) -> super::Result<Vec<super::ScheduleRow>>
where
    super::catalog::ScheduleCols: sqlx::FromRow<'r, R>,
{
    rows.iter()
        .map(|r| super::cols::read::<_, super::catalog::ScheduleCols>(r)?.row())
        .collect()
}

/// `sql` with PostgreSQL's numbered placeholders for `?` (none of this module's statements
/// has a `?` anywhere else).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// `sql` as SQLite takes it.
pub(crate) fn unnumbered(sql: &str) -> String {
    sql.to_string()
}

/// Implements [`CatalogStore`] for a backend: `$store` has a `pool` and a `writer()` whose guard
/// gives a `conn()` and is `done()` once written; `$sql` turns this module's SQL into its own.
macro_rules! impl_catalog {
    ($store:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl $crate::store::catalog::CatalogStore for $store {
            async fn create_experiment(
                &self,
                e: &$crate::store::catalog::ExperimentRow,
            ) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql(
                    "INSERT INTO experiments (id, name, description, created_at, archived) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                ))
                .bind(&e.id)
                .bind(&e.name)
                .bind(&e.description)
                .bind(e.created_at)
                .bind(e.archived)
                .execute(w.conn())
                .await?
                .rows_affected();
                w.done();
                Ok(n == 1)
            }

            async fn list_experiments(
                &self,
                archived: Option<bool>,
            ) -> $crate::store::Result<Vec<$crate::store::catalog::ExperimentRow>> {
                let rows = match archived {
                    Some(a) => {
                        sqlx::query(&$sql("SELECT * FROM experiments WHERE archived = ? ORDER BY created_at, id"))
                            .bind(a)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    None => {
                        sqlx::query("SELECT * FROM experiments ORDER BY created_at, id")
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                rows.iter().map($crate::store::cols::read).collect()
            }

            async fn get_experiment(
                &self,
                id_or_name: &str,
            ) -> $crate::store::Result<Option<$crate::store::catalog::ExperimentRow>> {
                let r = sqlx::query(&$sql(
                    "SELECT * FROM experiments WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
                ))
                .bind(id_or_name)
                .bind(id_or_name)
                .bind(id_or_name)
                .fetch_optional(&self.pool)
                .await?;
                r.as_ref().map($crate::store::cols::read).transpose()
            }

            async fn set_experiment_archived(
                &self,
                id: &str,
                archived: bool,
            ) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let mut tx = sqlx::Connection::begin(w.conn()).await?;
                let n = sqlx::query(&$sql("UPDATE experiments SET archived = ? WHERE id = ?"))
                    .bind(archived)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if archived {
                    sqlx::query(&$sql("UPDATE runs SET archived = ? WHERE experiment_id = ?"))
                        .bind(true)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(&$sql(
                        "UPDATE schedules SET enabled = ?, next_at = NULL WHERE experiment_id = ?",
                    ))
                    .bind(false)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                w.done();
                Ok(n > 0)
            }

            async fn experiment_holds(
                &self,
                id: &str,
            ) -> $crate::store::Result<$crate::store::catalog::Holds> {
                let r = sqlx::query(&$sql(
                    "SELECT (SELECT count(*) FROM runs WHERE experiment_id = ?) AS runs, \
                     (SELECT count(*) FROM schedules WHERE experiment_id = ?) AS schedules",
                ))
                .bind(id)
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                let runs: i64 = $crate::store::cols::col(&r, "runs")?;
                let schedules: i64 = $crate::store::cols::col(&r, "schedules")?;
                Ok($crate::store::catalog::Holds {
                    runs: runs.max(0) as u64,
                    schedules: schedules.max(0) as u64,
                })
            }

            async fn delete_experiment(&self, id: &str) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql("DELETE FROM experiments WHERE id = ?"))
                    .bind(id)
                    .execute(w.conn())
                    .await?
                    .rows_affected();
                w.done();
                Ok(n > 0)
            }

            async fn create_schedule(
                &self,
                s: &$crate::store::catalog::ScheduleRow,
                source: Option<(&str, &str)>,
            ) -> $crate::store::Result<()> {
                use $crate::store::cols::json;
                let mut w = self.writer().await?;
                let mut tx = sqlx::Connection::begin(w.conn()).await?;
                if let Some((digest, yaml)) = source {
                    sqlx::query(&$sql(
                        "INSERT INTO sources (digest, yaml) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    ))
                    .bind(digest)
                    .bind(yaml)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(&$sql(&format!(
                    "INSERT INTO schedules ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    $crate::store::catalog_sql::SCHEDULE_COLS
                )))
                .bind(&s.id)
                .bind(&s.name)
                .bind(&s.description)
                .bind(&s.experiment_id)
                .bind(&s.pipeline_id)
                .bind(&s.pipeline_version_id)
                .bind(&s.digest)
                .bind(json(&s.params))
                .bind((!s.labels.is_empty()).then(|| json(&s.labels)))
                .bind(&s.cron)
                .bind(&s.timezone)
                .bind(s.interval_s)
                .bind(s.start_at)
                .bind(s.end_at)
                .bind(s.catchup)
                .bind(i64::from(s.max_concurrency))
                .bind(s.enabled)
                .bind(s.cache)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.last_fired_at)
                .bind(s.next_at)
                .bind(s.resumed_at)
                .bind(&s.last_error)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                w.done();
                Ok(())
            }

            async fn list_schedules(
                &self,
                experiment: Option<&str>,
            ) -> $crate::store::Result<Vec<$crate::store::catalog::ScheduleRow>> {
                let rows = match experiment {
                    Some(e) => {
                        sqlx::query(&$sql(
                            "SELECT * FROM schedules WHERE experiment_id = ? ORDER BY created_at, id",
                        ))
                        .bind(e)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query("SELECT * FROM schedules ORDER BY created_at, id")
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                $crate::store::catalog_sql::schedules(&rows)
            }

            async fn get_schedule(
                &self,
                id_or_name: &str,
            ) -> $crate::store::Result<Option<$crate::store::catalog::ScheduleRow>> {
                let rows = sqlx::query(&$sql(
                    "SELECT * FROM schedules WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 2",
                ))
                .bind(id_or_name)
                .bind(id_or_name)
                .bind(id_or_name)
                .fetch_all(&self.pool)
                .await?;
                let mut found = $crate::store::catalog_sql::schedules(&rows)?;
                match found.len() {
                    0 => Ok(None),
                    1 => Ok(found.pop()),
                    _ if found[0].id == id_or_name => Ok(Some(found.swap_remove(0))),
                    _ => Err($crate::store::StoreError::Ambiguous(format!(
                        "several schedules are named `{id_or_name}`: give its id"
                    ))),
                }
            }

            async fn set_schedule_enabled(
                &self,
                id: &str,
                enabled: bool,
                next_at: Option<i64>,
                now: i64,
            ) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql(
                    "UPDATE schedules SET enabled = ?, next_at = ?, updated_at = ?, \
                     resumed_at = CASE WHEN ? AND NOT enabled THEN ? ELSE resumed_at END WHERE id = ?",
                ))
                .bind(enabled)
                .bind(next_at)
                .bind(now)
                .bind(enabled)
                .bind(now)
                .bind(id)
                .execute(w.conn())
                .await?
                .rows_affected();
                w.done();
                Ok(n > 0)
            }

            async fn schedule_failed(
                &self,
                id: &str,
                at: i64,
                next_at: Option<i64>,
                error: &str,
            ) -> $crate::store::Result<()> {
                let mut w = self.writer().await?;
                sqlx::query(&$sql(
                    "UPDATE schedules SET last_fired_at = ?, next_at = ?, last_error = ? WHERE id = ?",
                ))
                .bind(at)
                .bind(next_at)
                .bind(error)
                .bind(id)
                .execute(w.conn())
                .await?;
                w.done();
                Ok(())
            }

            async fn set_next_due(
                &self,
                id: &str,
                next_at: Option<i64>,
            ) -> $crate::store::Result<()> {
                let mut w = self.writer().await?;
                sqlx::query(&$sql(
                    "UPDATE schedules SET next_at = ? WHERE id = ? AND enabled = ?",
                ))
                .bind(next_at)
                .bind(id)
                .bind(true)
                .execute(w.conn())
                .await?;
                w.done();
                Ok(())
            }

            async fn delete_schedule(&self, id: &str) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql("DELETE FROM schedules WHERE id = ?"))
                    .bind(id)
                    .execute(w.conn())
                    .await?
                    .rows_affected();
                w.done();
                Ok(n > 0)
            }

            async fn due_schedules(
                &self,
                now: i64,
            ) -> $crate::store::Result<Vec<$crate::store::catalog::ScheduleRow>> {
                let rows = sqlx::query(&$sql(
                    "SELECT * FROM schedules WHERE enabled = ? AND next_at <= ? ORDER BY next_at, id",
                ))
                .bind(true)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::catalog_sql::schedules(&rows)
            }

            async fn set_version_name(
                &self,
                version_id: &str,
                name: &str,
            ) -> $crate::store::Result<()> {
                let mut w = self.writer().await?;
                sqlx::query(&$sql("UPDATE pipeline_versions SET name = ? WHERE id = ?"))
                    .bind(name)
                    .bind(version_id)
                    .execute(w.conn())
                    .await?;
                w.done();
                Ok(())
            }

            async fn version_name(
                &self,
                version_id: &str,
            ) -> $crate::store::Result<Option<String>> {
                let r = sqlx::query(&$sql("SELECT name FROM pipeline_versions WHERE id = ?"))
                    .bind(version_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match r {
                    Some(r) => $crate::store::cols::col(&r, "name"),
                    None => Ok(None),
                }
            }

            async fn delete_version(&self, version_id: &str) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let mut tx = sqlx::Connection::begin(w.conn()).await?;
                sqlx::query(&$sql(
                    "UPDATE runs SET pipeline_version_id = NULL WHERE pipeline_version_id = ?",
                ))
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
                let n = sqlx::query(&$sql("DELETE FROM pipeline_versions WHERE id = ?"))
                    .bind(version_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                w.done();
                Ok(n > 0)
            }

            async fn delete_pipeline(&self, pipeline_id: &str) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql(
                    "DELETE FROM pipelines WHERE id = ? AND NOT EXISTS (SELECT 1 FROM pipeline_versions WHERE pipeline_id = ?)",
                ))
                .bind(pipeline_id)
                .bind(pipeline_id)
                .execute(w.conn())
                .await?
                .rows_affected();
                w.done();
                Ok(n > 0)
            }

            async fn create_hook(
                &self,
                h: &$crate::store::catalog::HookRow,
            ) -> $crate::store::Result<bool> {
                use $crate::store::cols::json;
                let mut w = self.writer().await?;
                let n = sqlx::query(&$sql(
                    "INSERT INTO hooks (name, pipeline, kind, secret, params, labels, events, experiment_id, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                ))
                .bind(&h.name)
                .bind(&h.pipeline)
                .bind(&h.kind)
                .bind(&h.secret)
                .bind(json(&h.params))
                .bind(json(&h.labels))
                .bind(json(&h.events))
                .bind(&h.experiment_id)
                .bind(h.created_at)
                .execute(w.conn())
                .await?
                .rows_affected();
                w.done();
                Ok(n == 1)
            }

            async fn list_hooks(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::catalog::HookRow>> {
                let rows = sqlx::query("SELECT * FROM hooks ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| $crate::store::cols::read::<_, $crate::store::catalog::HookCols>(r)?.row())
                    .collect()
            }

            async fn get_hook(
                &self,
                name: &str,
            ) -> $crate::store::Result<Option<$crate::store::catalog::HookRow>> {
                let r = sqlx::query(&$sql("SELECT * FROM hooks WHERE name = ?"))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                r.as_ref()
                    .map(|r| $crate::store::cols::read::<_, $crate::store::catalog::HookCols>(r)?.row())
                    .transpose()
            }

            async fn delete_hook(&self, name: &str) -> $crate::store::Result<bool> {
                let mut w = self.writer().await?;
                let mut tx = sqlx::Connection::begin(w.conn()).await?;
                sqlx::query(&$sql("DELETE FROM hook_deliveries WHERE hook = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query(&$sql("DELETE FROM hooks WHERE name = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                w.done();
                Ok(n > 0)
            }

            async fn hook_delivery(
                &self,
                hook: &str,
                delivery: &str,
            ) -> $crate::store::Result<Option<String>> {
                let r = sqlx::query(&$sql(
                    "SELECT run_id FROM hook_deliveries WHERE hook = ? AND delivery = ?",
                ))
                .bind(hook)
                .bind(delivery)
                .fetch_optional(&self.pool)
                .await?;
                r.map(|r| $crate::store::cols::col(&r, "run_id")).transpose()
            }

            async fn record_delivery(
                &self,
                hook: &str,
                delivery: &str,
                run_id: &str,
                at: i64,
            ) -> $crate::store::Result<()> {
                let mut w = self.writer().await?;
                sqlx::query(&$sql(
                    "INSERT INTO hook_deliveries (hook, delivery, run_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (hook, delivery) DO NOTHING",
                ))
                .bind(hook)
                .bind(delivery)
                .bind(run_id)
                .bind(at)
                .execute(w.conn())
                .await?;
                w.done();
                Ok(())
            }

            async fn schedules_using(
                &self,
                pipeline_id: &str,
                version_id: Option<&str>,
            ) -> $crate::store::Result<u64> {
                let r = match version_id {
                    Some(v) => {
                        sqlx::query(&$sql(
                            "SELECT count(*) AS n FROM schedules WHERE pipeline_version_id = ?",
                        ))
                        .bind(v)
                        .fetch_one(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(&$sql(
                            "SELECT count(*) AS n FROM schedules WHERE pipeline_id = ? OR pipeline_version_id IN (SELECT id FROM pipeline_versions WHERE pipeline_id = ?)",
                        ))
                        .bind(pipeline_id)
                        .bind(pipeline_id)
                        .fetch_one(&self.pool)
                        .await?
                    }
                };
                let n: i64 = $crate::store::cols::col(&r, "n")?;
                Ok(n.max(0) as u64)
            }
        }
    };
}
pub(crate) use impl_catalog;

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            super::numbered("UPDATE t SET a = ?, b = ? WHERE id = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3"
        );
        assert_eq!(super::unnumbered("a = ?"), "a = ?");
    }
}
