//! Loops: a `forEach` step's iterations — expanded when an upstream output gives the items,
//! held back by `parallelism`, and gathered into the loop's outputs when they have all ended.

use super::*;
use sluice_spec::refs::{self, Ref};

impl Run {
    /// Whether task `i` is a loop not expanded yet: planning expands every loop whose items it
    /// knows, so this one's come from an upstream step's output.
    pub(super) fn loops_over_output(&self, i: usize) -> bool {
        let t = &self.plan.tasks[i];
        t.iterations.is_none()
            && t.iteration_of.is_none()
            && self.pipeline.control(self.step_of(i)).for_each.is_some()
    }

    /// Adds the iterations of loop `i`, whose items an upstream step output: one task per item
    /// (`step[k]`, appended, with a copy of a group's steps), waiting for what the loop waited
    /// for; the loop then waits for them. Returns the new tasks' indices.
    pub(super) fn expand(&mut self, i: usize) -> Result<Vec<usize>, String> {
        let name = self.plan.tasks[i].name.clone();
        let each = self
            .pipeline
            .control(self.step_of(i))
            .for_each
            .and_then(|e| e.value.as_str().and_then(refs::sole_ref));
        let Some(Ref::StepOutput {
            step: producer,
            name: output,
            ..
        }) = each
        else {
            return Err(format!(
                "`forEach` of step `{name}` names no upstream output"
            ));
        };
        let j = self
            .producer(i, &producer)
            .ok_or_else(|| format!("`forEach` of step `{name}`: unknown step `{producer}`"))?;
        let items = match self.tasks[j].outputs.params.get(&output) {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(format!(
                "`forEach` of step `{name}`: `{producer}` output `{output}` is {other}, not a list"
            ))
            }
            None => {
                return Err(format!(
                    "`forEach` of step `{name}`: step `{producer}` has no output `{output}`"
                ))
            }
        };
        let added = self
            .plan
            .expand(&self.pipeline, &self.params, &self.limits, i, items)?;
        self.tasks.resize(self.plan.tasks.len(), Task::new());
        Ok(added)
    }

    /// What `{{item}}`, `{{item.KEY}}` or `{{loops.NAME.item…}}` (`r`) is for task `i`.
    pub(super) fn item_value(&self, i: usize, r: &Ref) -> Result<serde_json::Value, String> {
        let Ref::Item { of, key } = r else {
            return Err(format!("`{{{{{r}}}}}` is not a loop item"));
        };
        let item = self
            .plan
            .item(&self.pipeline, i, of.as_deref())
            .ok_or_else(|| format!("`{{{{{r}}}}}` is defined only in a loop's iterations"))?;
        match key {
            None => Ok(item.clone()),
            Some(k) => item
                .get(k)
                .cloned()
                .ok_or_else(|| format!("the loop item {item} has no field `{k}`")),
        }
    }

    /// The other iterations of the loop iteration `i` (none for any other task).
    pub(super) fn siblings(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.plan.tasks[i]
            .iteration_of
            .and_then(|g| self.plan.tasks[g].iterations.as_deref())
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(move |&j| j != i)
    }

    /// How many iterations of task `i`'s loop may run at once, when `i` is an iteration.
    pub(super) fn parallelism_of(&self, i: usize) -> Option<usize> {
        self.plan.tasks[i].iteration_of?;
        let c = self.pipeline.control(self.step_of(i));
        c.parallelism.map(|p| p.value as usize)
    }

    /// A loop whose iterations all succeeded: it succeeds, each output parameter the list of
    /// its iterations' values in item order.
    pub(super) fn gather(&mut self, i: usize, now: i64, fx: &mut Vec<Effect>) {
        let iterations = self.plan.tasks[i].iterations.clone().unwrap_or_default();
        let step = self.step_of(i);
        let declared: Vec<String> = match step.group() {
            Some(g) => g.params.iter().map(|b| b.name.clone()).collect(),
            None => self
                .pipeline
                .template_of(step)
                .map(|t| t.outputs.params.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default(),
        };
        let mut outputs = Params::new();
        for name in declared {
            let values = iterations
                .iter()
                .map(|&t| {
                    self.tasks[t]
                        .outputs
                        .params
                        .get(&name)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null)
                })
                .collect();
            outputs.insert(name, serde_json::Value::Array(values));
        }
        let started = iterations
            .iter()
            .filter_map(|&j| self.tasks[j].started_at)
            .min()
            .or(Some(now));
        // Artifacts are gathered as `name[k]`; a step reading them gets each iteration's at `k`.
        let artifacts = iterations
            .iter()
            .enumerate()
            .flat_map(|(k, &j)| {
                self.tasks[j].outputs.artifacts.iter().map(move |a| {
                    // `model` becomes `model[k]`; one gathered by an inner loop, `model[j]`,
                    // becomes `model[k][j]`.
                    let (base, rest) = a.name.split_at(a.name.find('[').unwrap_or(a.name.len()));
                    ArtifactRecord {
                        name: format!("{base}[{k}]{rest}"),
                        ..a.clone()
                    }
                })
            })
            .collect();
        let t = &mut self.tasks[i];
        t.attempt = 1;
        t.outputs.params = outputs;
        t.outputs.artifacts = artifacts;
        t.started_at = started;
        t.ready_at = Some(now);
        self.finish_task(i, TaskState::Succeeded, None, None, now, fx);
    }
}
