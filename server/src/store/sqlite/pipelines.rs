//! Pipelines, their immutable versions, and the content-addressed pipeline files behind them.

use super::{read, SqliteStore};
use crate::store::cols::{PipelineCols, VersionCols, PIPELINE_SELECT, VERSION_SELECT};
use crate::store::{PipelineStore, Result};
use async_trait::async_trait;
use sluice_sdk::api::{format_ts, PipelineSummary, PipelineVersion};

fn summary(r: &sqlx::sqlite::SqliteRow) -> Result<PipelineSummary> {
    read::<_, PipelineCols>(r).map(PipelineSummary::from)
}

fn version(r: &sqlx::sqlite::SqliteRow) -> Result<PipelineVersion> {
    read::<_, VersionCols>(r).map(PipelineVersion::from)
}

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
        let rows = sqlx::query(&format!("{PIPELINE_SELECT} ORDER BY p.name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(summary).collect()
    }

    /// A pipeline by name or id.
    async fn get_pipeline(&self, name_or_id: &str) -> Result<Option<PipelineSummary>> {
        let row = sqlx::query(&format!("{PIPELINE_SELECT} WHERE p.name = ?1 OR p.id = ?1"))
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
