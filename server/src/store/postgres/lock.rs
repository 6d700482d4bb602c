//! The scheduler's lock: several servers share one database, and the one holding PostgreSQL's
//! advisory lock `sluice scheduler` schedules; it says where it is in `scheduler_leader`. The
//! lock lives as long as its connection: a server that dies (or loses the database) loses it,
//! and another takes it.

use super::PgStore;
use crate::store::Result;
use sqlx::Connection;

/// The lock, held on a connection of its own.
pub struct SchedulerLock {
    conn: sqlx::PgConnection,
}

impl SchedulerLock {
    /// Whether the connection that holds the lock still answers (if not, the lock may be
    /// another's by now).
    pub async fn held(&mut self) -> bool {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.conn.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

const KEY: &str = "hashtextextended('sluice scheduler', 0)";

impl PgStore {
    /// Takes the scheduler's lock if no other server holds it.
    pub async fn try_lock_scheduler(&self) -> Result<Option<SchedulerLock>> {
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({KEY})"))
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(SchedulerLock { conn }))
    }

    /// Says that `server`, reached at `url`, schedules from now on.
    pub async fn set_leader(&self, server: &str, url: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_leader (id, server, url, since) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET server = EXCLUDED.server, url = EXCLUDED.url, since = EXCLUDED.since",
        )
        .bind(server)
        .bind(url)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The server that schedules, and where it is: `(server, url)`.
    pub async fn leader(&self) -> Result<Option<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT server, url FROM scheduler_leader WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
