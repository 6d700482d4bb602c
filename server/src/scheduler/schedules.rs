//! Firing schedules: every half second the scheduling server looks for schedules due, works
//! out which due times to fire ([`Timing::due`]: catch-up or only the latest, within the
//! schedule's concurrency limit), and starts a run for each. The run and the schedule's new
//! last and next due times are written in one transaction, and a run per (schedule, due time)
//! is unique in the database: a server that was down catches up by the schedule's policy when
//! it starts again, and no due time ever fires twice.

use super::timetable::{self, Timing};
use super::{now_ms, NewRun, Scheduler};
use crate::store::{Fired, ScheduleRow, StoreError};
use sluice_spec as spec;
use std::sync::Arc;
use std::time::Duration;

/// How often due schedules are looked for.
const EVERY: Duration = Duration::from_millis(500);

/// A schedule's timing, from its row.
pub fn timing(s: &ScheduleRow) -> Result<Timing, String> {
    Ok(Timing {
        trigger: timetable::trigger(s.cron.as_deref(), s.timezone.as_deref(), s.interval_s)?,
        anchor: s.start_at.unwrap_or(s.created_at),
        end_at: s.end_at,
        not_before: s.resumed_at,
    })
}

/// Its first due time at or after `from`, and after its last firing.
pub fn next_due(s: &ScheduleRow, from: i64) -> Option<i64> {
    let t = timing(s).ok()?;
    t.next_after((from - 1).max(s.last_fired_at.unwrap_or(i64::MIN)))
}

impl Scheduler {
    /// Fires due schedules, forever. Spawn it once, on the scheduling server.
    pub async fn schedule_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.fire_due(now_ms()).await {
                tracing::error!(error = %e, "firing due schedules failed");
            }
        }
    }

    /// Starts the runs due at `now`.
    pub async fn fire_due(&self, now: i64) -> Result<(), StoreError> {
        for s in self.store.due_schedules(now).await? {
            let t = match timing(&s) {
                Ok(t) => t,
                Err(why) => {
                    self.store.schedule_failed(&s.id, now, None, &why).await?;
                    continue;
                }
            };
            let active = self.active_runs_of(&s.id).await;
            let slots = s.max_concurrency.saturating_sub(active);
            let times = t.due(s.last_fired_at, now, s.catchup, slots);
            if times.is_empty() {
                if slots > 0 {
                    // Nothing left in its window before now: on to its next due time (one
                    // paused since it was read stays paused).
                    let next = t.next_after(now.max(s.last_fired_at.unwrap_or(i64::MIN)));
                    self.store.set_next_due(&s.id, next).await?;
                }
                continue;
            }
            for at in times {
                let next = t.next_after(at);
                if let Err(why) = self.fire(&s, at, next).await {
                    tracing::warn!(schedule = %s.name, at, error = %why, "a due time of a schedule started no run");
                    self.store.schedule_failed(&s.id, at, next, &why).await?;
                }
            }
        }
        Ok(())
    }

    async fn active_runs_of(&self, schedule: &str) -> u32 {
        let st = self.state.lock().await;
        st.runs
            .values()
            .filter(|a| a.row.schedule_id.as_deref() == Some(schedule))
            .count() as u32
    }

    /// Starts the run of `s` for due time `at`.
    async fn fire(&self, s: &ScheduleRow, at: i64, next_at: Option<i64>) -> Result<(), String> {
        let store_err = |e: StoreError| e.to_string();
        let (yaml, version_id, version) = match (&s.pipeline_version_id, &s.pipeline_id, &s.digest)
        {
            (Some(vid), Some(pid), _) => {
                let v = self
                    .store
                    .list_versions(pid)
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .find(|v| v.id == *vid)
                    .ok_or("its pipeline version is gone")?;
                (v.yaml, Some(v.id), Some(v.version))
            }
            (None, Some(pid), _) => {
                let v = self
                    .store
                    .get_version(pid, None)
                    .await
                    .map_err(store_err)?
                    .ok_or("its pipeline has no version left")?;
                (v.yaml, Some(v.id), Some(v.version))
            }
            (_, None, Some(digest)) => {
                let yaml = self
                    .store
                    .source(digest)
                    .await
                    .map_err(store_err)?
                    .ok_or("its pipeline file is gone")?;
                (yaml, None, None)
            }
            _ => return Err("it names no pipeline".into()),
        };
        let pipeline = spec::load_with("pipeline.yaml", &yaml, &self.cfg.limits)
            .map_err(|d| format!("its pipeline no longer loads: {d}"))?;
        let params = sluice_engine::resolve_params(&pipeline, &s.params)
            .map_err(|e| format!("its parameters: {}", e.join("; ")))?;
        if let Some(a) = pipeline.artifacts.first() {
            return Err(format!(
                "its pipeline takes input artifacts (`{}`), which a schedule cannot give",
                a.name
            ));
        }
        let when = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
            .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
            .unwrap_or_else(|| at.to_string());
        let new = NewRun {
            name: Some(format!("{}-{when}", s.name)),
            pipeline,
            digest: spec::digest(&yaml),
            yaml,
            pipeline_version_id: version_id,
            pipeline_version: version,
            params,
            inputs: Vec::new(),
            labels: s.labels.clone(),
            cache: s.cache,
            reuse: Default::default(),
            idempotency: None,
            experiment_id: s.experiment_id.clone(),
            fired: Some(Fired {
                schedule_id: s.id.clone(),
                at,
                next_at,
            }),
        };
        let id = self.create_run(new).await.map_err(|e| e.to_string())?;
        tracing::info!(schedule = %s.name, run = %id.id(), at, "schedule fired");
        Ok(())
    }
}
