//! Steps that serve (`daemon`, as Argo's daemoned steps): the steps after one start once its
//! worker says it is up, with its address; it is stopped once every other step of its group (or
//! of the run) has ended, and a daemon stopped so has succeeded.

use super::*;

impl Run {
    /// Whether task `i` runs a step that serves.
    pub fn is_daemon(&self, i: usize) -> bool {
        self.plan.tasks[i].daemon
    }

    /// Whether task `i` serves now: a daemon its worker said is up, and still running.
    pub fn serving(&self, i: usize) -> bool {
        self.tasks[i].serving()
    }

    /// A dependency that lets the steps waiting for it run: one that succeeded, or one that
    /// serves.
    pub(crate) fn went_well(&self, i: usize) -> bool {
        self.tasks[i].state == TaskState::Succeeded || self.serving(i)
    }

    /// The daemon's worker says it is up at `address`: the steps waiting for it may start.
    pub fn serving_at(
        &mut self,
        i: usize,
        lease_id: &LeaseId,
        address: String,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Vec<Effect>, Refused> {
        self.check_lease(i, lease_id)?;
        let mut fx = Vec::new();
        if !self.is_daemon(i) || self.tasks[i].address.is_some() {
            return Ok(fx);
        }
        let t = &mut self.tasks[i];
        if let Some(l) = &mut t.lease {
            l.expires_at = now + ttl_ms;
        }
        if t.state == TaskState::Leased {
            t.state = TaskState::Running;
            t.started_at = Some(now);
        }
        t.address = Some(address);
        fx.push(Effect::Task(i));
        for d in self.plan.tasks[i].dependents.clone() {
            self.dependency_ended(d, now, &mut fx);
        }
        self.settle(now, &mut fx);
        Ok(fx)
    }

    /// Whether task `i` serves or reaches a step that serves: what it does depends on a live
    /// service, so its result is never reused (from the cache or by a rerun).
    pub fn serves_or_reaches_a_daemon(&self, i: usize) -> bool {
        self.is_daemon(i) || self.plan.tasks[i].deps.iter().any(|&p| self.is_daemon(p))
    }

    /// The worker task `i` must run on: that of a daemon it waits for, which serves on its run's
    /// network on that worker.
    pub fn bound_to(&self, i: usize) -> Option<&WorkerId> {
        self.plan.tasks[i]
            .deps
            .iter()
            .filter(|&&p| self.serving(p))
            .find_map(|&p| self.tasks[p].lease.as_ref().map(|l| &l.worker))
    }

    /// Whether a daemon told to stop has: its group or run had nothing left for it to serve.
    pub(crate) fn stopped_daemon(&self, i: usize) -> bool {
        self.state == RunState::Running && self.tasks[i].cancel_requested && self.is_daemon(i)
    }

    /// Daemons whose group (or run) has no other step left to run are stopped; one that has not
    /// started never does.
    pub(crate) fn stop_idle_daemons(&mut self, now: i64, fx: &mut Vec<Effect>) {
        if self.state != RunState::Running {
            // A cancel stops them as it stops every step.
            return;
        }
        for i in 0..self.tasks.len() {
            let t = &self.tasks[i];
            if t.state.is_terminal() || t.cancel_requested || !self.is_daemon(i) {
                continue;
            }
            let scope = self.plan.tasks[i].scope;
            let idle = (0..self.tasks.len()).all(|j| {
                j == i
                    || self.plan.tasks[j].scope != scope
                    || self.plan.tasks[j].exit_handler
                    || self.tasks[j].state.is_terminal()
                    || self.is_daemon(j)
            });
            if !idle {
                continue;
            }
            match self.tasks[i].state {
                TaskState::Leased | TaskState::Running => {
                    self.tasks[i].cancel_requested = true;
                    fx.push(Effect::Task(i));
                }
                _ => {
                    let why = "the steps it would serve had all ended before it started";
                    self.finish_task(i, TaskState::Skipped, None, Some(why.into()), now, fx);
                }
            }
        }
    }
}
