//! Stopping a run: a cancel, or its pipeline's `timeout` running out. Running steps are asked
//! to stop, pending ones never start, exit handlers still run.

use super::*;

impl Run {
    /// Whether the run has outlived its pipeline's `timeout` by `now`.
    pub fn deadline_passed(&self, now: i64) -> bool {
        self.state == RunState::Running
            && self
                .pipeline
                .timeout
                .as_ref()
                .is_some_and(|t| now >= self.created_at + t.value as i64)
    }

    /// The run outlived its timeout: stopped as by a cancel (exit handlers still run), then failed.
    pub fn time_out(&mut self, now: i64) -> Vec<Effect> {
        let limit = self.pipeline.timeout.as_ref().map(|t| t.value).unwrap_or(0);
        self.end_reason = Some(EndReason::TimedOut);
        self.error = Some(format!("the run timed out after {}", human_ms(limit)));
        self.cancel(now)
    }

    /// Cancels the run: tasks not started are cancelled, running ones are asked to stop.
    pub fn cancel(&mut self, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.state.is_terminal() {
            return fx;
        }
        self.state = RunState::Cancelling;
        if self.end_reason != Some(EndReason::TimedOut) {
            self.end_reason = Some(EndReason::Cancelled);
            self.error = Some("cancelled".into());
        }
        fx.push(Effect::Run);
        for i in 0..self.tasks.len() {
            if self.plan.tasks[i].exit_handler {
                // Exit handlers run after a cancel too.
                continue;
            }
            match self.tasks[i].state {
                TaskState::Pending | TaskState::Ready => {
                    // A task waiting to retry keeps the last failure's message.
                    let why = self.tasks[i]
                        .retry_at
                        .take()
                        .and(self.tasks[i].error.clone());
                    self.finish_task(i, TaskState::Cancelled, None, why, now, &mut fx)
                }
                // A running group ends when its steps have.
                TaskState::Running if self.plan.tasks[i].members.is_some() => {}
                TaskState::Leased | TaskState::Running => {
                    self.tasks[i].cancel_requested = true;
                    fx.push(Effect::Task(i));
                }
                _ => {}
            }
        }
        self.settle(now, &mut fx);
        fx
    }

    /// Leases whose holder should be told to stop: the task was cancelled.
    pub fn cancel_requested(&self, i: usize) -> bool {
        self.tasks[i].cancel_requested
    }
}
