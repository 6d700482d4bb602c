//! Conditions: whether a task's `when` lets it run.

use super::*;
use sluice_spec::cond;
use sluice_spec::refs::Ref;

impl Run {
    /// Whether task `i` runs: its `when` holds (or it has none). A condition that names an
    /// output of a step that was skipped is not met.
    pub(super) fn condition(&self, i: usize) -> Verdict {
        let step = self.step_of(i);
        let Some(when) = self.pipeline.control(step).when else {
            return Verdict::Run;
        };
        let expr = match cond::parse(&when.value) {
            Ok(e) => e,
            Err(e) => return Verdict::Error(format!("invalid condition `{}`: {e}", when.value)),
        };
        let per_item = cond::refs(&expr)
            .iter()
            .any(|r| matches!(r, Ref::Item { of: None, .. }));
        let p = &self.plan.tasks[i];
        if per_item && p.iteration_of.is_none() && self.pipeline.control(step).for_each.is_some() {
            // A loop whose condition reads `{{item}}`: each iteration decides for itself.
            return Verdict::Run;
        }
        for r in cond::refs(&expr) {
            if let Ref::StepOutput { step: s, .. } = r {
                if let Some(j) = self.producer(i, s) {
                    if self.tasks[j].state == TaskState::Skipped {
                        return Verdict::Skip(format!(
                            "condition `{}` names step `{s}`, which was skipped",
                            when.value
                        ));
                    }
                }
            }
        }
        let lookup = |r: &Ref| -> Result<serde_json::Value, String> {
            match r {
                Ref::Param(n) => self
                    .params
                    .get(n)
                    .cloned()
                    .ok_or_else(|| format!("no parameter `{n}`")),
                Ref::StepOutput { step: s, name, .. } => self
                    .producer(i, s)
                    .and_then(|j| self.tasks[j].outputs.params.get(name).cloned())
                    .ok_or_else(|| format!("step `{s}` has no output `{name}`")),
                Ref::Item { .. } => self.item_value(i, r),
                Ref::Context(c) => Ok(match *c {
                    "run.id" => self.id.clone().into(),
                    "run.name" => self.name.clone().into(),
                    "task.name" => step.name.clone().into(),
                    _ => (self.tasks[i].attempt + 1).into(),
                }),
                other => Err(format!("`{{{{{other}}}}}` cannot be used in a condition")),
            }
        };
        match cond::eval(&expr, &lookup) {
            Ok(true) => Verdict::Run,
            Ok(false) => Verdict::Skip(format!("condition `{}` is false", when.value)),
            Err(e) => Verdict::Error(format!("cannot evaluate condition `{}`: {e}", when.value)),
        }
    }
}

pub(super) enum Verdict {
    Run,
    Skip(String),
    Error(String),
}
