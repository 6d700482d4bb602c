//! Retries: a failed attempt waits (pending, with `retry_at`) and runs again, with a growing delay.

use super::*;

impl Run {
    /// The wait before the next attempt of task `i`, whose latest attempt failed; `None` when
    /// its retries are used up (or it has none). Exponential: initial × factor^(n-1), capped.
    pub(super) fn retry_delay(&self, i: usize) -> Option<u64> {
        let step = self.step_of(i);
        let retry = self.pipeline.control(step).retry?.value;
        let failed = self.tasks[i]
            .attempts
            .iter()
            .filter(|a| a.state == TaskState::Failed)
            .count() as u32;
        if failed > retry.limit {
            return None;
        }
        let grown = retry.backoff_initial_ms as f64 * retry.backoff_factor.powi(failed as i32 - 1);
        Some((grown.min(retry.backoff_max_ms as f64)) as u64)
    }

    /// Tasks whose retry is due by `now`.
    pub fn due_retries(&self, now: i64) -> Vec<usize> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.state == TaskState::Pending && t.retry_at.is_some_and(|at| at <= now)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A task's retry is due: it becomes ready again.
    pub fn retry_due(&mut self, i: usize, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let t = &mut self.tasks[i];
        if t.state != TaskState::Pending || t.retry_at.is_none() || self.state != RunState::Running
        {
            return fx;
        }
        t.retry_at = None;
        t.started_at = None;
        self.make_ready(i, now, &mut fx);
        self.settle(now, &mut fx);
        fx
    }
}

/// `1.5s`, `2m`, `250ms`: a delay as people read it.
pub(super) fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{}s", (ms as f64 / 100.0).round() / 10.0),
        _ => format!("{}m", (ms as f64 / 6000.0).round() / 10.0),
    }
}
