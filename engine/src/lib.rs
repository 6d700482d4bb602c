//! The engine: a pure state machine over one run's task graph.
//!
//! It does no I/O: no clock (every time is passed in), no database, no tokio; Cargo keeps it so,
//! since this crate depends on `sluice-spec` alone and cannot see an I/O crate. Given a run and an
//! event it updates the run and says what changed, so that the scheduler can persist exactly that
//! and wake whoever waits. Dependencies, readiness, failure propagation, leases and cancellation are
//! decided here.

mod caching;
mod conditions;
mod daemons;
mod groups;
mod leases;
mod loops;
mod metrics;
mod plan;
mod resolve;
mod retries;
mod stopping;
pub mod task;
#[cfg(test)]
mod tests;

use conditions::Verdict;
pub use plan::{plan, resolve_params, Plan, PlanTask};
use retries::human_ms;
use sluice_spec::ids::{LeaseId, RunId, WorkerId};
use sluice_spec::state::{EndReason, Outcome, Params, RunState, TaskState};
use sluice_spec::{Limits, Pipeline};
use std::sync::Arc;
pub use task::{ArtifactRecord, TaskResult, TaskSpec};

/// What a task produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskOutputs {
    pub params: Params,
    pub artifacts: Vec<ArtifactRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    pub id: LeaseId,
    pub worker: WorkerId,
    pub expires_at: i64,
}

/// One task's state; times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub state: TaskState,
    /// How many times the task has been leased.
    pub attempt: u32,
    pub lease: Option<LeaseInfo>,
    /// The run was cancelled while this task ran: its worker must kill it.
    pub cancel_requested: bool,
    pub inputs: Params,
    pub spec: Option<TaskSpec>,
    /// The digest of the image the latest attempt ran.
    pub image_digest: Option<String>,
    pub outputs: TaskOutputs,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub ready_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// A failed attempt is retried at this time (the task waits as pending until then).
    pub retry_at: Option<i64>,
    /// Every attempt that ended, oldest first.
    pub attempts: Vec<Attempt>,
    /// Its result was reused from this run (no container ran).
    pub cached_from: Option<RunId>,
    /// Skipped because its condition was false (or everything it waits for was skipped so):
    /// unlike a skip after a failure, this lets steps that also wait for others run.
    pub condition_false: bool,
    /// Where a daemon step serves (its address on its run's network), once its worker says it
    /// is up; kept after it ends.
    pub address: Option<String>,
}

/// How one attempt of a task ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    /// The worker it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: i64,
}

impl Task {
    pub fn new() -> Task {
        Task {
            state: TaskState::Pending,
            attempt: 0,
            lease: None,
            cancel_requested: false,
            inputs: Params::new(),
            spec: None,
            image_digest: None,
            outputs: TaskOutputs::default(),
            exit_code: None,
            error: None,
            ready_at: None,
            started_at: None,
            finished_at: None,
            retry_at: None,
            attempts: Vec::new(),
            condition_false: false,
            cached_from: None,
            address: None,
        }
    }
}

impl Task {
    /// Whether it serves now: a daemon its worker said is up, and still running.
    pub fn serving(&self) -> bool {
        self.address.is_some() && matches!(self.state, TaskState::Leased | TaskState::Running)
    }
}

impl Default for Task {
    fn default() -> Self {
        Task::new()
    }
}

/// What an event changed, for the scheduler to persist and announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The task's row changed.
    Task(usize),
    /// The task became ready: queue it for leasing.
    Ready(usize),
    /// The run's row changed (state, error, finish time).
    Run,
    /// The task succeeded afresh: record its result in the cache under this key.
    Cache(usize, String),
}

/// Why an event from a worker was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The lease is not (or no longer) the task's current lease.
    LeaseLost,
}

/// What the store keeps of a run, for [`Run::restore`].
pub struct Restored {
    pub id: String,
    pub name: String,
    pub pipeline: Arc<Pipeline>,
    pub params: Params,
    /// The input artifacts it was given.
    pub inputs: Vec<ArtifactRecord>,
    pub state: RunState,
    pub error: Option<String>,
    pub end_reason: Option<EndReason>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub tasks: Vec<Task>,
    /// The tasks' names, in the same order.
    pub names: Vec<String>,
    pub cache: bool,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub name: String,
    pub pipeline: Arc<Pipeline>,
    pub params: Params,
    /// The pipeline's input artifacts, as they were given to this run (`{{artifacts.NAME}}`):
    /// uploaded when it was submitted, kept by content.
    pub inputs: Vec<ArtifactRecord>,
    pub plan: Plan,
    pub state: RunState,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub tasks: Vec<Task>,
    /// Why it ended or is ending (`TimedOut`: stopped by the pipeline's `timeout`, it ends
    /// failed, not cancelled); `None` while it runs.
    pub end_reason: Option<EndReason>,
    /// Whether this run reuses cached results (`false`: every step runs afresh).
    pub cache: bool,
    /// How many tasks its loops may add.
    pub limits: Limits,
}

impl Run {
    /// Plans a new run and marks the tasks without dependencies ready.
    pub fn start(
        id: String,
        name: String,
        pipeline: Arc<Pipeline>,
        params: Params,
        inputs: Vec<ArtifactRecord>,
        limits: Limits,
        now: i64,
    ) -> Result<(Run, Vec<Effect>), String> {
        let plan = plan(&pipeline, &params, &limits)?;
        let tasks = vec![Task::new(); plan.tasks.len()];
        let mut run = Run {
            id,
            name,
            pipeline,
            params,
            inputs,
            plan,
            state: RunState::Running,
            error: None,
            created_at: now,
            finished_at: None,
            tasks,
            end_reason: None,
            cache: true,
            limits,
        };
        let mut fx = vec![Effect::Run];
        for i in 0..run.tasks.len() {
            fx.push(Effect::Task(i));
            let t = &run.plan.tasks[i];
            if t.deps.is_empty() && !t.exit_handler && t.scope.is_none() {
                run.make_ready(i, now, &mut fx);
            }
        }
        run.settle(now, &mut fx);
        Ok((run, fx))
    }

    /// Rebuilds a run from what was stored (after a server restart). The plan is derived again
    /// from the pipeline, so it must match the stored tasks one for one.
    pub fn restore(r: Restored) -> Result<Run, String> {
        let plan = plan(&r.pipeline, &r.params, &r.limits)?;
        let planned = plan.tasks.len();
        if r.tasks.len() < planned {
            return Err(format!(
                "stored run has {} tasks but its pipeline plans {planned}",
                r.tasks.len()
            ));
        }
        let mut stored = r.tasks;
        let grown = stored.split_off(planned);
        let r_names: Vec<String> = r.names.get(planned..).unwrap_or_default().to_vec();
        let mut run = Run {
            end_reason: r.end_reason,
            cache: r.cache,
            limits: r.limits,
            id: r.id,
            name: r.name,
            pipeline: r.pipeline,
            params: r.params,
            inputs: r.inputs,
            plan,
            state: r.state,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            tasks: stored,
        };
        // Tasks beyond the plan are the iterations of loops over upstream outputs, stored in the
        // order the loops started: expand those loops again, in that order, from the same outputs.
        let mut k = 0;
        while k < grown.len() {
            let at = planned + k;
            let Some(loop_name) = r_names
                .get(k)
                .and_then(|n| n.rsplit_once('['))
                .map(|(s, _)| s.to_string())
            else {
                return Err(format!("stored task {at} is not a loop iteration"));
            };
            let i = run
                .task_index(&loop_name)
                .ok_or_else(|| format!("stored iterations of unknown step `{loop_name}`"))?;
            let added = run.expand(i)?;
            if added.is_empty() {
                return Err(format!(
                    "stored iterations of loop `{loop_name}`, which has none"
                ));
            }
            for (j, t) in added.iter().enumerate() {
                let stored = grown.get(k + j).ok_or_else(|| {
                    format!("loop `{loop_name}` has fewer stored iterations than its items")
                })?;
                run.tasks[*t] = stored.clone();
            }
            k += added.len();
        }
        Ok(run)
    }

    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.plan.index.get(name).copied()
    }

    /// The task a reference written in task `from`'s step to step `name` means: resolved as
    /// names resolve in nested groups, in the same copy of each group `from` runs in.
    pub fn producer(&self, from: usize, name: &str) -> Option<usize> {
        let q = self.pipeline.lookup(self.step_of(from), name)?;
        self.plan.instance(from, q)
    }

    /// The pipeline step task `i` runs.
    pub fn step_of(&self, i: usize) -> &sluice_spec::Step {
        self.pipeline.task_step(self.plan.tasks[i].step)
    }

    fn make_ready(&mut self, i: usize, now: i64, fx: &mut Vec<Effect>) {
        match self.condition(i) {
            Verdict::Run => {}
            Verdict::Skip(why) => {
                self.tasks[i].condition_false = true;
                return self.finish_task(i, TaskState::Skipped, None, Some(why), now, fx);
            }
            Verdict::Error(e) => {
                return self.finish_task(i, TaskState::Failed, None, Some(e), now, fx)
            }
        }
        if self.loops_over_output(i) {
            // A loop over an upstream output: its items are known now.
            match self.expand(i) {
                Ok(added) => {
                    for &t in &added {
                        fx.push(Effect::Task(t));
                    }
                    let its = self.plan.tasks[i].iterations.clone().unwrap_or_default();
                    if its.is_empty() {
                        return self.gather(i, now, fx);
                    }
                    for t in its {
                        self.start_when_free(t, now, fx);
                    }
                    return;
                }
                Err(e) => return self.finish_task(i, TaskState::Failed, None, Some(e), now, fx),
            }
        }
        if self.plan.tasks[i].iterations.is_some() {
            return self.gather(i, now, fx);
        }
        if let Some(limit) = self.parallelism_of(i) {
            let busy = self.siblings(i).filter(|&j| {
                matches!(
                    self.tasks[j].state,
                    TaskState::Ready | TaskState::Leased | TaskState::Running
                )
            });
            if busy.count() >= limit {
                // Waits (pending) for a sibling to end; see `finish_task`.
                return;
            }
        }
        if self.plan.tasks[i].members.is_some() {
            return self.start_group(i, now, fx);
        }
        let attempt = self.tasks[i].attempt + 1;
        match resolve::resolve(self, i, attempt) {
            Ok((inputs, spec)) => {
                let t = &mut self.tasks[i];
                t.inputs = inputs;
                t.spec = Some(spec);
                t.state = TaskState::Ready;
                t.ready_at = Some(now);
                fx.push(Effect::Task(i));
                fx.push(Effect::Ready(i));
            }
            Err(e) => self.finish_task(i, TaskState::Failed, None, Some(e), now, fx),
        }
    }

    fn finish_task(
        &mut self,
        i: usize,
        state: TaskState,
        exit_code: Option<i32>,
        error: Option<String>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let t = &mut self.tasks[i];
        t.state = state;
        t.exit_code = exit_code;
        t.error = error;
        t.finished_at = Some(now);
        t.lease = None;
        fx.push(Effect::Task(i));
        if self.plan.tasks[i].members.is_some() && self.tasks[i].started_at.is_none() {
            // A group that never started: its steps never will.
            self.end_unstarted_members(i, now, fx);
        }
        for d in self.plan.tasks[i].dependents.clone() {
            self.dependency_ended(d, now, fx);
        }
        if let Some(g) = self.plan.tasks[i].scope {
            self.group_progress(g, now, fx);
        }
        // A loop iteration's end may let a sibling held back by `parallelism` start.
        if self.plan.tasks[i].iteration_of.is_some() && self.state == RunState::Running {
            let waiting: Vec<usize> = self
                .siblings(i)
                .filter(|&j| {
                    self.tasks[j].state == TaskState::Pending
                        && self.tasks[j].retry_at.is_none()
                        && self.plan.tasks[j].deps.iter().all(|&p| self.went_well(p))
                })
                .collect();
            for j in waiting {
                self.make_ready(j, now, fx);
            }
        }
    }

    /// Task `t` may start now (its loop expanded, its group started): it does, or waits for its
    /// dependencies, or ends as they did.
    fn start_when_free(&mut self, t: usize, now: i64, fx: &mut Vec<Effect>) {
        if self.plan.tasks[t].deps.is_empty() {
            self.make_ready(t, now, fx);
        } else {
            self.dependency_ended(t, now, fx);
        }
    }

    /// One of task `d`'s dependencies ended (or, a daemon, came up). A failure or cancel upstream
    /// ends `d` at once; once all have ended or serve, `d` runs if any succeeded or serves, and
    /// is skipped too if every one was skipped by a condition (so a step after if/else branches
    /// runs after whichever branch ran).
    fn dependency_ended(&mut self, d: usize, now: i64, fx: &mut Vec<Effect>) {
        if self.tasks[d].state != TaskState::Pending || self.tasks[d].retry_at.is_some() {
            return;
        }
        if let Some(g) = self.plan.tasks[d].scope {
            if self.tasks[g].state != TaskState::Running {
                // Its group has not started: it starts the steps whose dependencies have ended.
                return;
            }
        }
        let deps = self.plan.tasks[d].deps.clone();
        let broken = deps.iter().copied().find(|&p| {
            let t = &self.tasks[p];
            matches!(t.state, TaskState::Failed | TaskState::Cancelled)
                || (t.state == TaskState::Skipped && !t.condition_false)
        });
        if let (Some(p), Some(iterations)) = (broken, self.plan.tasks[d].iterations.clone()) {
            // An iteration failed: the loop fails, and iterations not started yet never will.
            let name = self.plan.tasks[p].name.clone();
            for j in iterations {
                if self.tasks[j].state == TaskState::Pending {
                    let why = format!("loop `{}` failed", self.plan.tasks[d].name);
                    self.finish_task(j, TaskState::Skipped, None, Some(why), now, fx);
                }
            }
            if self.tasks[d].state == TaskState::Pending {
                let state = self.tasks[p].state;
                let next = if state == TaskState::Cancelled {
                    TaskState::Cancelled
                } else {
                    TaskState::Failed
                };
                self.finish_task(
                    d,
                    next,
                    None,
                    Some(format!("iteration `{name}` {state}")),
                    now,
                    fx,
                );
            }
            return;
        }
        if let Some(p) = broken {
            let state = self.tasks[p].state;
            let (next, why) = if state == TaskState::Cancelled {
                (TaskState::Cancelled, None)
            } else {
                let name = &self.plan.tasks[p].name;
                (
                    TaskState::Skipped,
                    Some(format!("upstream step `{name}` {state}")),
                )
            };
            return self.finish_task(d, next, None, why, now, fx);
        }
        let open = self.state == RunState::Running || self.plan.tasks[d].exit_handler;
        let ended = |p: usize| self.tasks[p].state.is_terminal() || self.serving(p);
        if !deps.iter().all(|&p| ended(p)) || !open {
            return;
        }
        if deps.iter().any(|&p| self.went_well(p)) {
            self.make_ready(d, now, fx);
        } else {
            let names: Vec<&str> = deps
                .iter()
                .map(|&p| self.plan.tasks[p].name.as_str())
                .collect();
            let why = format!("every step it waits for was skipped ({})", names.join(", "));
            self.tasks[d].condition_false = true;
            self.finish_task(d, TaskState::Skipped, None, Some(why), now, fx);
        }
    }

    /// Starts the exit handlers once every other task has ended; ends the run once every task has.
    fn settle(&mut self, now: i64, fx: &mut Vec<Effect>) {
        if self.state.is_terminal() {
            return;
        }
        self.stop_idle_daemons(now, fx);
        let main_done = self
            .tasks
            .iter()
            .zip(&self.plan.tasks)
            .all(|(t, p)| p.run_exit_handler() || t.state.is_terminal());
        if main_done {
            let handlers = (0..self.tasks.len()).filter(|&i| self.plan.tasks[i].run_exit_handler());
            self.start_exit_handlers(handlers.collect(), now, fx);
        }
        if !self.tasks.iter().all(|t| t.state.is_terminal()) {
            return;
        }
        // The run's error names a step that failed itself, rather than a loop or group it failed.
        let failed = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == TaskState::Failed);
        let leaf = |i: &usize| {
            let p = &self.plan.tasks[*i];
            p.members.is_none() && p.iterations.is_none()
        };
        let failed = failed
            .clone()
            .find(|(i, _)| leaf(i))
            .or_else(|| failed.clone().next());
        let timed_out = self.end_reason == Some(EndReason::TimedOut);
        if self.end_reason.is_none() {
            self.end_reason = Some(EndReason::Tasks);
        }
        self.state = if self.state == RunState::Cancelling && timed_out {
            RunState::Failed
        } else if self.state == RunState::Cancelling {
            RunState::Cancelled
        } else if let Some((i, t)) = failed {
            self.error = Some(format!(
                "step `{}` failed: {}",
                self.plan.tasks[i].name,
                t.error.as_deref().unwrap_or("unknown error")
            ));
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        self.finished_at = Some(now);
        fx.push(Effect::Run);
    }

    /// How the run's steps (exit handlers aside) went, for `{{run.status}}`: `running` until they
    /// have all ended, then `cancelled`, `failed` or `succeeded`: what the run ends as. A run
    /// stopped by its timeout has failed (it ends `failed`), as Argo's `{{workflow.status}}` says
    /// of a workflow past its deadline and Kubeflow of a run past its timeout (a group's steps it
    /// stopped are cancelled, and `{{group.status}}` says so, as the group ends cancelled).
    pub fn status(&self) -> &'static str {
        if self.end_reason == Some(EndReason::TimedOut) {
            return "failed";
        }
        if self.state == RunState::Cancelling || self.state == RunState::Cancelled {
            return "cancelled";
        }
        let main = (0..self.tasks.len()).filter(|&i| !self.plan.tasks[i].run_exit_handler());
        self.how_they_went(main)
    }

    /// How tasks went, together: `running` until all have ended, then `failed` if one failed,
    /// `cancelled` if one was, else `succeeded`.
    fn how_they_went(&self, tasks: impl Iterator<Item = usize>) -> &'static str {
        let states: Vec<TaskState> = tasks.map(|i| self.tasks[i].state).collect();
        if !states.iter().all(|s| s.is_terminal()) {
            "running"
        } else if states.contains(&TaskState::Failed) {
            "failed"
        } else if states.contains(&TaskState::Cancelled) {
            "cancelled"
        } else {
            "succeeded"
        }
    }
}
