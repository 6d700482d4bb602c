//! Tokens, secrets, pipelines and logs in PostgreSQL.

use super::PgStore;
use crate::store::cols::{
    json, read, stream_name, LogCols, PipelineCols, SecretCols, TokenCols, VersionCols,
    PIPELINE_SELECT, TOKEN_COLS, VERSION_SELECT,
};
use crate::store::{
    AccessStore, LogCursor, LogRow, LogStore, PipelineStore, Result, SecretRow, StoreError,
    TokenRow,
};
use async_trait::async_trait;
use sluice_sdk::api::{format_ts, LogLine, PipelineSummary, PipelineVersion};

#[async_trait]
impl AccessStore for PgStore {
    async fn create_token(&self, t: &TokenRow, hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, name, role, pipelines, hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(t.pipelines.as_ref().map(json))
        .bind(hash)
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1 AND revoked_at IS NULL"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| read::<_, TokenCols>(r).and_then(TokenCols::row))
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at DESC, id LIMIT 10000"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| read::<_, TokenCols>(r).and_then(TokenCols::row))
            .collect()
    }

    async fn revoke_token(&self, id_or_name: &str, now: i64) -> Result<Vec<TokenRow>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE revoked_at IS NULL AND (id = $1 OR name = $1) FOR UPDATE"
        ))
        .bind(id_or_name)
        .fetch_all(&mut *tx)
        .await?;
        let mut found = rows
            .iter()
            .map(|r| read::<_, TokenCols>(r).and_then(TokenCols::row))
            .collect::<Result<Vec<_>>>()?;
        // An id names one token; a name shared by several names none of them.
        if let Some(by_id) = found.iter().position(|t| t.id == id_or_name) {
            found = vec![found.swap_remove(by_id)];
        } else if found.len() > 1 {
            return Err(StoreError::Ambiguous(format!(
                "{} live tokens are named `{id_or_name}`: revoke one by its id",
                found.len()
            )));
        }
        for t in &mut found {
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&t.id)
                .execute(&mut *tx)
                .await?;
            t.revoked_at = Some(now);
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn live_tokens(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tokens WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn put_secret(
        &self,
        name: &str,
        seal: &(dyn Fn(u32) -> (Vec<u8>, Vec<u8>) + Send + Sync),
        now: i64,
    ) -> Result<u32> {
        let mut tx = self.pool.begin().await?;
        // One change of a secret at a time, across servers: its version is sealed with it.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sluice secret ' || $1, 0))")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let old: Option<i64> = sqlx::query_scalar("SELECT version FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let version = u32::try_from(old.unwrap_or(0) + 1)
            .map_err(|_| StoreError::Corrupt(format!("secret `{name}`: version out of range")))?;
        let (nonce, ciphertext) = seal(version);
        sqlx::query(
            "INSERT INTO secrets (name, version, nonce, ciphertext, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version as i64)
        .bind(nonce)
        .bind(ciphertext)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>> {
        let row = sqlx::query("SELECT * FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| read::<_, SecretCols>(r).map(SecretRow::from))
            .transpose()
    }

    async fn list_secrets(&self) -> Result<Vec<(String, u32, i64)>> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT name, version, updated_at FROM secrets ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(n, v, t)| (n, v.clamp(0, u32::MAX as i64) as u32, t))
            .collect())
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

#[async_trait]
impl PipelineStore for PgStore {
    async fn put_pipeline_version(
        &self,
        name: &str,
        description: Option<&str>,
        yaml: &str,
        digest: &str,
        now: i64,
    ) -> Result<PipelineVersion> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sources (digest, yaml) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(digest)
            .bind(yaml)
            .execute(&mut *tx)
            .await?;
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO pipelines (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING")
            .bind(&id)
            .bind(name)
            .bind(description)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // The pipeline's row, locked: its versions are numbered one at a time, across servers.
        let pipeline_id: String =
            sqlx::query_scalar("SELECT id FROM pipelines WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        let existing = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.pipeline_id = $1 AND v.digest = $2"
        ))
        .bind(&pipeline_id)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = existing {
            tx.commit().await?;
            return read::<_, VersionCols>(&r).map(PipelineVersion::from);
        }
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM pipeline_versions WHERE pipeline_id = $1",
        )
        .bind(&pipeline_id)
        .fetch_one(&mut *tx)
        .await?;
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO pipeline_versions (id, pipeline_id, version, digest, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&pipeline_id)
            .bind(next)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE pipelines SET description = $1, updated_at = $2 WHERE id = $3")
            .bind(description)
            .bind(now)
            .bind(&pipeline_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PipelineVersion {
            id,
            pipeline_id,
            pipeline_name: name.to_string(),
            version: u32::try_from(next).unwrap_or(u32::MAX),
            digest: digest.to_string(),
            created_at: format_ts(now),
            yaml: yaml.to_string(),
            created: true,
        })
    }

    async fn list_pipelines(&self) -> Result<Vec<PipelineSummary>> {
        let rows = sqlx::query(&format!("{PIPELINE_SELECT} ORDER BY p.name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| read::<_, PipelineCols>(r).map(PipelineSummary::from))
            .collect()
    }

    async fn get_pipeline(&self, name_or_id: &str) -> Result<Option<PipelineSummary>> {
        let row = sqlx::query(&format!("{PIPELINE_SELECT} WHERE p.name = $1 OR p.id = $1"))
            .bind(name_or_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| read::<_, PipelineCols>(r).map(PipelineSummary::from))
            .transpose()
    }

    async fn list_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>> {
        let rows = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.pipeline_id = $1 ORDER BY v.version DESC"
        ))
        .bind(pipeline_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| read::<_, VersionCols>(r).map(PipelineVersion::from))
            .collect()
    }

    async fn get_version(
        &self,
        pipeline_id: &str,
        version_no: Option<u32>,
    ) -> Result<Option<PipelineVersion>> {
        let row = match version_no {
            Some(n) => {
                sqlx::query(&format!(
                    "{VERSION_SELECT} WHERE v.pipeline_id = $1 AND v.version = $2"
                ))
                .bind(pipeline_id)
                .bind(n as i64)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{VERSION_SELECT} WHERE v.pipeline_id = $1 ORDER BY v.version DESC LIMIT 1"
                ))
                .bind(pipeline_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref()
            .map(|r| read::<_, VersionCols>(r).map(PipelineVersion::from))
            .transpose()
    }

    async fn source(&self, digest: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT yaml FROM sources WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// Appends log lines, each column as one array (one prepared statement for any number of
/// lines); a line already kept (a resent batch) is kept once.
pub(super) async fn insert_logs(tx: &mut sqlx::PgConnection, rows: &[LogRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut run_id = Vec::with_capacity(rows.len());
    let (mut task_idx, mut attempt, mut seq, mut ts) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    let (mut stream, mut line) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for r in rows {
        run_id.push(r.run_id.as_str());
        task_idx.push(r.task_idx as i64);
        attempt.push(r.attempt as i64);
        seq.push(r.seq as i64);
        ts.push(r.ts);
        stream.push(stream_name(r.stream));
        line.push(r.line.as_str());
    }
    sqlx::query(
        "INSERT INTO logs (run_id, task_idx, attempt, seq, ts, stream, line) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
         $6::text[], $7::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(task_idx)
    .bind(attempt)
    .bind(seq)
    .bind(ts)
    .bind(stream)
    .bind(line)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl LogStore for PgStore {
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
            "SELECT attempt, seq, ts, stream, line FROM logs WHERE run_id = $1 AND task_idx = $2 \
             AND (attempt > $3 OR (attempt = $3 AND seq > $4)) ORDER BY attempt, seq LIMIT $5",
        )
        .bind(run_id)
        .bind(task_idx as i64)
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
