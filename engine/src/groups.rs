//! Groups: a group's task starts when what its steps wait for outside it has ended and its
//! condition holds, lets its steps run, starts its exit handlers once they have all ended, and
//! ends when everything in it has, with the outcome of its steps.

use super::*;
use sluice_spec::refs::{self, Ref};

impl Run {
    /// Group task `g` starts: the steps in it whose dependencies have ended become ready.
    pub(super) fn start_group(&mut self, g: usize, now: i64, fx: &mut Vec<Effect>) {
        let t = &mut self.tasks[g];
        t.state = TaskState::Running;
        t.attempt = 1;
        t.ready_at = Some(now);
        t.started_at = Some(now);
        fx.push(Effect::Task(g));
        let members = self.plan.tasks[g].members.clone().unwrap_or_default();
        for m in members {
            if !self.plan.tasks[m].exit_handler && self.tasks[m].state == TaskState::Pending {
                self.start_when_free(m, now, fx);
            }
        }
        self.group_progress(g, now, fx);
    }

    /// Something in running group `g` ended: once all its steps have, its exit handlers start;
    /// once they have too, the group ends.
    pub(super) fn group_progress(&mut self, g: usize, now: i64, fx: &mut Vec<Effect>) {
        if self.tasks[g].state != TaskState::Running || self.plan.tasks[g].members.is_none() {
            return;
        }
        let members = self.plan.tasks[g].members.clone().unwrap_or_default();
        let (handlers, body): (Vec<usize>, Vec<usize>) = members
            .iter()
            .partition(|&&m| self.plan.tasks[m].exit_handler);
        if !body.iter().all(|&m| self.tasks[m].state.is_terminal()) {
            return;
        }
        self.start_exit_handlers(handlers, now, fx);
        if self.tasks[g].state != TaskState::Running
            || !members.iter().all(|&m| self.tasks[m].state.is_terminal())
        {
            return;
        }
        self.end_group(g, &body, &members, now, fx);
    }

    /// What exit handlers wait for has ended: those not ordered after another one start (the
    /// rest follow by `dependsOn`), once.
    pub(super) fn start_exit_handlers(
        &mut self,
        handlers: Vec<usize>,
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        for h in handlers {
            let t = &self.tasks[h];
            if self.plan.tasks[h].deps.is_empty()
                && t.state == TaskState::Pending
                && t.retry_at.is_none()
                && t.attempt == 0
            {
                self.make_ready(h, now, fx);
            }
        }
    }

    /// Every task in group `g` has ended: the group fails if one failed, is cancelled if one
    /// was, succeeds (with its bound outputs) if one of its steps succeeded, and is skipped if
    /// they all were.
    fn end_group(
        &mut self,
        g: usize,
        body: &[usize],
        all: &[usize],
        now: i64,
        fx: &mut Vec<Effect>,
    ) {
        let failed = all.iter().copied().find(|&m| {
            self.tasks[m].state == TaskState::Failed && self.plan.tasks[m].iteration_of.is_none()
        });
        if let Some(m) = failed {
            let why = format!(
                "step `{}` failed: {}",
                self.plan.tasks[m].name,
                self.tasks[m].error.as_deref().unwrap_or("unknown error")
            );
            return self.finish_task(g, TaskState::Failed, None, Some(why), now, fx);
        }
        if all
            .iter()
            .any(|&m| self.tasks[m].state == TaskState::Cancelled)
        {
            return self.finish_task(g, TaskState::Cancelled, None, None, now, fx);
        }
        if body
            .iter()
            .any(|&m| self.tasks[m].state == TaskState::Succeeded)
        {
            return match self.group_outputs(g) {
                Ok(outputs) => {
                    self.tasks[g].outputs = outputs;
                    self.finish_task(g, TaskState::Succeeded, None, None, now, fx)
                }
                Err(e) => self.finish_task(g, TaskState::Failed, None, Some(e), now, fx),
            };
        }
        let by_condition = body.iter().all(|&m| self.tasks[m].condition_false);
        self.tasks[g].condition_false = by_condition;
        let why = if by_condition {
            "every step in it was skipped".to_string()
        } else {
            body.iter()
                .find_map(|&m| self.tasks[m].error.clone())
                .unwrap_or_else(|| "every step in it was skipped".into())
        };
        self.finish_task(g, TaskState::Skipped, None, Some(why), now, fx);
    }

    /// Group task `g`'s outputs: each bound output of one of its steps, named as the group
    /// names it.
    fn group_outputs(&self, g: usize) -> Result<TaskOutputs, String> {
        let Some(group) = self.step_of(g).group() else {
            return Ok(TaskOutputs::default());
        };
        let mut out = TaskOutputs::default();
        let one = |b: &sluice_spec::Binding,
                   value: &serde_json::Value|
         -> Result<(usize, String), String> {
            let Some(Ref::StepOutput { step, name, .. }) = value.as_str().and_then(refs::sole_ref)
            else {
                return Err(format!("output `{}` is not a step's output", b.name));
            };
            let task = format!("{}.{step}", self.plan.tasks[g].name);
            let m = self
                .task_index(&task)
                .ok_or_else(|| format!("output `{}`: no step `{step}` in the group", b.name))?;
            let state = self.tasks[m].state;
            if state != TaskState::Succeeded {
                return Err(format!(
                    "output `{}` comes from step `{step}`, which {state}",
                    b.name
                ));
            }
            Ok((m, name))
        };
        // A list binds the first of its steps that succeeded (the others were skipped).
        let member = |b: &sluice_spec::Binding| match &b.value {
            serde_json::Value::Array(items) => {
                let mut last = Err(format!("output `{}` is bound to no step", b.name));
                for v in items {
                    last = one(b, v);
                    if last.is_ok() {
                        break;
                    }
                }
                last
            }
            v => one(b, v),
        };
        for b in &group.params {
            let (m, name) = member(b)?;
            let v = self.tasks[m]
                .outputs
                .params
                .get(&name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "output `{}`: step `{}` has no output `{name}`",
                        b.name, self.plan.tasks[m].name
                    )
                })?;
            out.params.insert(b.name.clone(), v);
        }
        for b in &group.artifacts {
            let (m, name) = member(b)?;
            out.artifacts
                .extend(renamed(&self.tasks[m].outputs.artifacts, &name, &b.name));
        }
        Ok(out)
    }

    /// Group task `g` ended before it started: what is in it ends the same way, without running.
    pub(super) fn end_unstarted_members(&mut self, g: usize, now: i64, fx: &mut Vec<Effect>) {
        let members = self.plan.tasks[g].members.clone().unwrap_or_default();
        let state = match self.tasks[g].state {
            TaskState::Cancelled => TaskState::Cancelled,
            _ => TaskState::Skipped,
        };
        let why = match state {
            TaskState::Cancelled => None,
            _ => Some(format!(
                "group `{}` was skipped: {}",
                self.plan.tasks[g].name,
                self.tasks[g].error.as_deref().unwrap_or("it did not run")
            )),
        };
        let condition_false = self.tasks[g].condition_false;
        for m in members {
            if self.tasks[m].state == TaskState::Pending {
                self.tasks[m].condition_false = condition_false;
                self.tasks[m].retry_at = None;
                self.finish_task(m, state, None, why.clone(), now, fx);
            }
        }
    }

    /// How the steps of the group exit handler `i` is in went, for `{{group.status}}`.
    pub(super) fn group_status(&self, i: usize) -> &'static str {
        let Some(g) = self.plan.tasks[i].scope else {
            return self.status();
        };
        let members = self.plan.tasks[g].members.iter().flatten().copied();
        self.how_they_went(members.filter(|&m| !self.plan.tasks[m].exit_handler))
    }
}

impl Run {
    /// The pipeline's own outputs (a Kubeflow pipeline's), each the output of the top-level
    /// step its binding names, once that step succeeded (a list binds the first that did):
    /// parameters by value, artifacts as their step's records, renamed.
    pub fn pipeline_outputs(&self) -> TaskOutputs {
        let mut out = TaskOutputs::default();
        let source = |b: &sluice_spec::Binding| -> Option<(usize, String)> {
            let choices: Vec<&serde_json::Value> = match &b.value {
                serde_json::Value::Array(items) => items.iter().collect(),
                v => vec![v],
            };
            choices.into_iter().find_map(|v| {
                let Some(Ref::StepOutput { step, name, .. }) = v.as_str().and_then(refs::sole_ref)
                else {
                    return None;
                };
                let i = self.task_index(&step)?;
                (self.tasks[i].state == TaskState::Succeeded).then_some((i, name))
            })
        };
        for b in &self.pipeline.outputs.params {
            if let Some(v) =
                source(b).and_then(|(i, n)| self.tasks[i].outputs.params.get(&n).cloned())
            {
                out.params.insert(b.name.clone(), v);
            }
        }
        for b in &self.pipeline.outputs.artifacts {
            if let Some((i, n)) = source(b) {
                out.artifacts
                    .extend(renamed(&self.tasks[i].outputs.artifacts, &n, &b.name));
            }
        }
        out
    }
}

/// The records of artifact `name` (or, gathered by a loop, `name[k]`…) as artifact `to`.
fn renamed<'a>(
    records: &'a [ArtifactRecord],
    name: &'a str,
    to: &'a str,
) -> impl Iterator<Item = ArtifactRecord> + 'a {
    let gathered = format!("{name}[");
    records.iter().filter_map(move |a| {
        let name = if a.name == name {
            to.to_string()
        } else {
            format!("{to}[{}", a.name.strip_prefix(&gathered)?)
        };
        Some(ArtifactRecord { name, ..a.clone() })
    })
}
