//! API tokens and secrets.

use super::{json, read, SqliteStore};
use crate::store::cols::{SecretCols, TokenCols, TOKEN_COLS};
use crate::store::{AccessStore, Result, SecretRow, StoreError, TokenRow};
use async_trait::async_trait;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_token(&self, t: &TokenRow, hash: &str) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query(
            "INSERT INTO tokens (id, name, role, pipelines, hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(t.pipelines.as_ref().map(json))
        .bind(hash)
        .bind(t.created_at)
        .execute(w.conn())
        .await?;
        w.done();
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE hash = ? AND revoked_at IS NULL"
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
        let mut w = self.writer().await?;
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE revoked_at IS NULL AND (id = ?1 OR name = ?1)"
        ))
        .bind(id_or_name)
        .fetch_all(w.conn())
        .await?;
        let mut found = rows
            .iter()
            .map(|r| read::<_, TokenCols>(r).and_then(TokenCols::row))
            .collect::<Result<Vec<_>>>()?;
        // An id names one token; a name shared by several names none of them.
        if let Some(by_id) = found.iter().position(|t| t.id == id_or_name) {
            found = vec![found.swap_remove(by_id)];
        } else if found.len() > 1 {
            w.done();
            return Err(StoreError::Ambiguous(format!(
                "{} live tokens are named `{id_or_name}`: revoke one by its id",
                found.len()
            )));
        }
        for t in &mut found {
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ?")
                .bind(now)
                .bind(&t.id)
                .execute(w.conn())
                .await?;
            t.revoked_at = Some(now);
        }
        w.done();
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
        let mut w = self.writer().await?;
        let old: Option<i64> = sqlx::query_scalar("SELECT version FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(w.conn())
            .await?;
        let version = u32::try_from(old.unwrap_or(0) + 1)
            .map_err(|_| StoreError::Corrupt(format!("secret `{name}`: version out of range")))?;
        let (nonce, ciphertext) = seal(version);
        sqlx::query(
            "INSERT INTO secrets (name, version, nonce, ciphertext, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version as i64)
        .bind(nonce)
        .bind(ciphertext)
        .bind(now)
        .execute(w.conn())
        .await?;
        w.done();
        Ok(version)
    }

    async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>> {
        let row = sqlx::query("SELECT * FROM secrets WHERE name = ?")
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
        let mut w = self.writer().await?;
        let n = sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(w.conn())
            .await?
            .rows_affected();
        w.done();
        Ok(n > 0)
    }
}
