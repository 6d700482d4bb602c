//! Pipelines, their immutable versions, and the content-addressed pipeline files behind them.

use super::{Result, Store};
use sluice_sdk::api::{format_ts, PipelineSummary, PipelineVersion};
use sqlx::Row;

fn summary(r: &sqlx::sqlite::SqliteRow) -> PipelineSummary {
    PipelineSummary {
        id: r.get("id"),
        name: r.get("name"),
        description: r.get("description"),
        latest_version: r.get::<i64, _>("latest") as u32,
        created_at: format_ts(r.get("created_at")),
        updated_at: format_ts(r.get("updated_at")),
    }
}

fn version(r: &sqlx::sqlite::SqliteRow) -> PipelineVersion {
    PipelineVersion {
        id: r.get("id"),
        pipeline_id: r.get("pipeline_id"),
        pipeline_name: r.get("name"),
        version: r.get::<i64, _>("version") as u32,
        digest: r.get("digest"),
        created_at: format_ts(r.get("created_at")),
        yaml: r.get("yaml"),
        created: false,
    }
}

const VERSION_SELECT: &str = "SELECT v.id, v.pipeline_id, p.name, v.version, v.digest, v.created_at, s.yaml \
     FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id JOIN sources s ON s.digest = v.digest";

impl Store {
    /// Stores a pipeline file as the next version of the pipeline it names, unless the very same
    /// bytes are already a version of it, in which case that version is returned.
    pub async fn put_pipeline_version(
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
            Some(r) => r.get("id"),
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
            return Ok(version(&r));
        }
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS n FROM pipeline_versions WHERE pipeline_id = ?")
            .bind(&pipeline_id)
            .fetch_one(&mut *tx)
            .await?
            .get("n");
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

    pub async fn list_pipelines(&self) -> Result<Vec<PipelineSummary>> {
        let rows = sqlx::query(
            "SELECT p.*, (SELECT MAX(version) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS latest \
             FROM pipelines p ORDER BY p.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary).collect())
    }

    /// A pipeline by name or id.
    pub async fn get_pipeline(&self, name_or_id: &str) -> Result<Option<PipelineSummary>> {
        let row = sqlx::query(
            "SELECT p.*, (SELECT MAX(version) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS latest \
             FROM pipelines p WHERE p.name = ?1 OR p.id = ?1",
        )
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(summary))
    }

    pub async fn list_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>> {
        let rows = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.pipeline_id = ? ORDER BY v.version DESC"
        ))
        .bind(pipeline_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(version).collect())
    }

    /// A version of a pipeline; the latest when `version` is `None`.
    pub async fn get_version(
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
        Ok(row.as_ref().map(version))
    }

    pub async fn source(&self, digest: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT yaml FROM sources WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get("yaml")))
    }
}
