//! Pipelines, their immutable versions, and the content-addressed pipeline files behind them.

use super::{read, SqliteStore};
use crate::store::{PipelineStore, Result};
use async_trait::async_trait;
use sluice_sdk::api::{format_ts, PipelineSummary, PipelineVersion};

#[derive(sqlx::FromRow)]
struct PipelineCols {
    id: String,
    name: String,
    description: Option<String>,
    #[sqlx(try_from = "i64")]
    latest: u32,
    created_at: i64,
    updated_at: i64,
}

fn summary(r: &sqlx::sqlite::SqliteRow) -> Result<PipelineSummary> {
    let c: PipelineCols = read(r)?;
    Ok(PipelineSummary {
        id: c.id,
        name: c.name,
        description: c.description,
        latest_version: c.latest,
        created_at: format_ts(c.created_at),
        updated_at: format_ts(c.updated_at),
    })
}

#[derive(sqlx::FromRow)]
struct VersionCols {
    id: String,
    pipeline_id: String,
    name: String,
    #[sqlx(try_from = "i64")]
    version: u32,
    digest: String,
    created_at: i64,
    yaml: String,
}

fn version(r: &sqlx::sqlite::SqliteRow) -> Result<PipelineVersion> {
    let c: VersionCols = read(r)?;
    Ok(PipelineVersion {
        id: c.id,
        pipeline_id: c.pipeline_id,
        pipeline_name: c.name,
        version: c.version,
        digest: c.digest,
        created_at: format_ts(c.created_at),
        yaml: c.yaml,
        created: false,
    })
}

const VERSION_SELECT: &str = "SELECT v.id, v.pipeline_id, p.name, v.version, v.digest, v.created_at, s.yaml \
     FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id JOIN sources s ON s.digest = v.digest";

#[async_trait]
impl PipelineStore for SqliteStore {
    /// Stores a pipeline file as the next version of the pipeline it names, unless the very same
    /// bytes are already a version of it, in which case that version is returned.
    async fn put_pipeline_version(
        &self,
        name: &str,
        description: Option<&str>,
        yaml: &str,
        digest: &str,
        now: i64,
    ) -> Result<PipelineVersion> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        sqlx::query("INSERT OR IGNORE INTO sources (digest, yaml) VALUES (?, ?)")
            .bind(digest)
            .bind(yaml)
            .execute(&mut *tx)
            .await?;
        let pipeline_id: String = match sqlx::query("SELECT id FROM pipelines WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => super::col(&r, "id")?,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query("INSERT INTO pipelines (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(&id)
                    .bind(name)
                    .bind(description)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        let existing = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.pipeline_id = ? AND v.digest = ?"
        ))
        .bind(&pipeline_id)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = existing {
            tx.commit().await?;
            w.done();
            return version(&r);
        }
        let next: i64 = super::col(
            &sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS n FROM pipeline_versions WHERE pipeline_id = ?")
                .bind(&pipeline_id)
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO pipeline_versions (id, pipeline_id, version, digest, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&pipeline_id)
            .bind(next)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE pipelines SET description = ?, updated_at = ? WHERE id = ?")
            .bind(description)
            .bind(now)
            .bind(&pipeline_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        w.done();
        Ok(PipelineVersion {
            id,
            pipeline_id,
            pipeline_name: name.to_string(),
            version: next as u32,
            digest: digest.to_string(),
            created_at: format_ts(now),
            yaml: yaml.to_string(),
            created: true,
        })
    }

    async fn list_pipelines(&self) -> Result<Vec<PipelineSummary>> {
        let rows = sqlx::query(
            "SELECT p.*, (SELECT MAX(version) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS latest \
             FROM pipelines p ORDER BY p.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    /// A pipeline by name or id.
    async fn get_pipeline(&self, name_or_id: &str) -> Result<Option<PipelineSummary>> {
        let row = sqlx::query(
            "SELECT p.*, (SELECT MAX(version) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS latest \
             FROM pipelines p WHERE p.name = ?1 OR p.id = ?1",
        )
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(summary).transpose()
    }

    async fn list_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>> {
        let rows = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.pipeline_id = ? ORDER BY v.version DESC"
        ))
        .bind(pipeline_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version).collect()
    }

    /// A version of a pipeline; the latest when `version` is `None`.
    async fn get_version(
        &self,
        pipeline_id: &str,
        version_no: Option<u32>,
    ) -> Result<Option<PipelineVersion>> {
        let row = match version_no {
            Some(n) => {
                sqlx::query(&format!(
                    "{VERSION_SELECT} WHERE v.pipeline_id = ? AND v.version = ?"
                ))
                .bind(pipeline_id)
                .bind(n as i64)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{VERSION_SELECT} WHERE v.pipeline_id = ? ORDER BY v.version DESC LIMIT 1"
                ))
                .bind(pipeline_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(version).transpose()
    }

    async fn source(&self, digest: &str) -> Result<Option<String>> {
        sqlx::query("SELECT yaml FROM sources WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| super::col(&r, "yaml"))
            .transpose()
    }
}
