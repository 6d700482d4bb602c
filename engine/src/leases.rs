//! A task's lease, from the worker that takes it to how its attempt ends: lease, heartbeat,
//! started, finished (its outputs checked against what the step declares), and a lease that ran
//! out. Every event names its lease, and one for any other lease is refused.

use super::*;

impl Run {
    /// A worker takes a ready task. Returns false when the task is not ready (taken meanwhile).
    pub fn lease(
        &mut self,
        i: usize,
        lease_id: LeaseId,
        worker: WorkerId,
        now: i64,
        ttl_ms: i64,
    ) -> (bool, Vec<Effect>) {
        let open = self.state == RunState::Running
            || (self.state == RunState::Cancelling && self.plan.tasks[i].exit_handler);
        let t = &mut self.tasks[i];
        if t.state != TaskState::Ready || !open {
            return (false, Vec::new());
        }
        t.state = TaskState::Leased;
        t.attempt += 1;
        t.address = None;
        t.lease = Some(LeaseInfo {
            id: lease_id,
            worker,
            expires_at: now + ttl_ms,
        });
        t.started_at = None;
        (true, vec![Effect::Task(i)])
    }

    pub(crate) fn check_lease(&self, i: usize, lease_id: &LeaseId) -> Result<(), Refused> {
        match &self.tasks[i].lease {
            Some(l) if l.id == *lease_id => Ok(()),
            _ => Err(Refused::LeaseLost),
        }
    }

    /// The worker still holds the lease: push its expiry out.
    pub fn heartbeat(
        &mut self,
        i: usize,
        lease_id: &LeaseId,
        now: i64,
        ttl_ms: i64,
    ) -> Result<(), Refused> {
        self.check_lease(i, lease_id)?;
        if let Some(l) = &mut self.tasks[i].lease {
            l.expires_at = now + ttl_ms;
        }
        Ok(())
    }

    /// The container started, from the image with this digest.
    pub fn started(
        &mut self,
        i: usize,
        lease_id: &LeaseId,
        now: i64,
        ttl_ms: i64,
        image_digest: Option<String>,
    ) -> Result<Vec<Effect>, Refused> {
        self.check_lease(i, lease_id)?;
        let t = &mut self.tasks[i];
        if image_digest.is_some() {
            t.image_digest = image_digest;
        }
        if let Some(l) = &mut t.lease {
            l.expires_at = now + ttl_ms;
        }
        if t.state == TaskState::Leased {
            t.state = TaskState::Running;
            t.started_at = Some(now);
            return Ok(vec![Effect::Task(i)]);
        }
        Ok(Vec::new())
    }

    /// The worker finished the task. Output parameters are checked against their declared types;
    /// a missing or ill-typed one fails the task.
    pub fn finished(
        &mut self,
        i: usize,
        lease_id: &LeaseId,
        result: TaskResult,
        now: i64,
    ) -> Result<Vec<Effect>, Refused> {
        self.check_lease(i, lease_id)?;
        let mut fx = Vec::new();
        let t = &mut self.tasks[i];
        if t.started_at.is_none() {
            t.started_at = Some(now);
        }
        t.outputs.artifacts = result.artifacts;
        t.cached_from = result.cached_from.clone();
        let stopped_daemon = self.stopped_daemon(i);
        let t = &mut self.tasks[i];
        let (state, error) = match result.outcome {
            // A daemon stopped because nothing was left for it to serve did its part.
            Outcome::Cancelled if stopped_daemon => (TaskState::Succeeded, None),
            Outcome::Cancelled => (TaskState::Cancelled, result.error),
            Outcome::Failed => (
                TaskState::Failed,
                result
                    .error
                    .or_else(|| result.exit_code.map(|c| format!("exited with code {c}"))),
            ),
            Outcome::Succeeded => {
                match typed_outputs(t.spec.as_ref(), &result.outputs, &t.outputs.artifacts) {
                    Ok(params) => {
                        t.outputs.params = params;
                        (TaskState::Succeeded, None)
                    }
                    Err(e) => (TaskState::Failed, Some(e)),
                }
            }
        };
        let t = &mut self.tasks[i];
        t.attempts.push(Attempt {
            attempt: t.attempt,
            worker: t.lease.as_ref().map(|l| l.worker.clone()),
            state,
            exit_code: result.exit_code,
            error: error.clone(),
            started_at: t.started_at,
            finished_at: now,
        });
        if state == TaskState::Failed && self.state == RunState::Running {
            if let Some(delay) = self.retry_delay(i) {
                // Not the end yet: wait, then run again (resolved afresh); dependents wait too.
                let t = &mut self.tasks[i];
                t.state = TaskState::Pending;
                t.lease = None;
                t.exit_code = result.exit_code;
                t.retry_at = Some(now + delay as i64);
                t.error = Some(format!(
                    "attempt {} failed: {}; retrying in {}",
                    t.attempt,
                    error.as_deref().unwrap_or("unknown error"),
                    human_ms(delay)
                ));
                fx.push(Effect::Task(i));
                return Ok(fx);
            }
        }
        if state == TaskState::Succeeded && result.cached_from.is_none() {
            if let Some((key, _)) = self.cache_key(i) {
                fx.push(Effect::Cache(i, key));
            }
        }
        self.finish_task(i, state, result.exit_code, error, now, &mut fx);
        self.settle(now, &mut fx);
        Ok(fx)
    }

    /// The lease ran out without a heartbeat: the worker is presumed gone. The task runs again
    /// elsewhere (or, if the run was cancelled meanwhile, is cancelled).
    pub fn lease_expired(&mut self, i: usize, now: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let stopped_daemon = self.stopped_daemon(i);
        let t = &mut self.tasks[i];
        if !matches!(t.state, TaskState::Leased | TaskState::Running) {
            return fx;
        }
        let worker = t
            .lease
            .as_ref()
            .map(|l| l.worker.clone())
            .unwrap_or_default();
        if stopped_daemon {
            let why = format!("stopped; worker {worker} stopped responding as it was told to");
            self.finish_task(i, TaskState::Succeeded, None, Some(why), now, &mut fx);
        } else if t.cancel_requested || self.state != RunState::Running {
            self.finish_task(
                i,
                TaskState::Cancelled,
                None,
                Some(format!("cancelled; worker {worker} stopped responding")),
                now,
                &mut fx,
            );
        } else {
            // Ready again, resolved afresh (placeholders such as `{{task.attempt}}` change). The
            // lost attempt stays in the task's history, with the worker it was lost on.
            let lost = t.attempt;
            t.attempts.push(Attempt {
                attempt: lost,
                worker: t.lease.as_ref().map(|l| l.worker.clone()),
                state: TaskState::Failed,
                exit_code: None,
                error: Some(format!("lost: worker {worker} stopped responding")),
                started_at: t.started_at,
                finished_at: now,
            });
            t.lease = None;
            t.address = None;
            t.started_at = None;
            self.make_ready(i, now, &mut fx);
            if self.tasks[i].state == TaskState::Ready {
                self.tasks[i].error = Some(format!(
                    "attempt {lost} lost: worker {worker} stopped responding"
                ));
            }
        }
        self.settle(now, &mut fx);
        fx
    }

    /// Tasks whose lease ran out at least `grace_ms` before `now`. A worker that cannot renew its
    /// lease stops the task itself when the lease runs out; the grace is the time it is given to
    /// have done so before the task may run elsewhere, so that it never runs twice at once. Until
    /// then the lease still stands: a late result is taken, a late heartbeat renews it.
    pub fn expired_leases(&self, now: i64, grace_ms: i64) -> Vec<usize> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.lease
                    .as_ref()
                    .is_some_and(|l| l.expires_at.saturating_add(grace_ms) <= now)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// Checks a finished task's output parameters against the types its spec declares, and that
/// every declared output artifact was recorded.
fn typed_outputs(
    spec: Option<&TaskSpec>,
    raw: &std::collections::BTreeMap<String, String>,
    artifacts: &[ArtifactRecord],
) -> Result<Params, String> {
    for decl in spec
        .map(|s| s.output_artifacts.as_slice())
        .unwrap_or_default()
    {
        if !artifacts.iter().any(|a| a.name == decl.name) {
            return Err(format!(
                "output artifact `{}` was not written to {}",
                decl.name, decl.path
            ));
        }
    }
    let mut out = Params::new();
    for decl in spec.map(|s| s.output_params.as_slice()).unwrap_or_default() {
        let text = raw.get(&decl.name).ok_or_else(|| {
            format!(
                "output parameter `{}` was not written to {}",
                decl.name, decl.path
            )
        })?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let value = decl
            .ty
            .parse(text)
            .map_err(|e| format!("output parameter `{}` is {}: {e}", decl.name, decl.ty))?;
        out.insert(decl.name.clone(), value);
    }
    Ok(out)
}
