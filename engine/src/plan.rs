//! Planning: a pipeline and its parameter values become a task graph.
//!
//! Every step gets a task, named by its place (`prep`, a group's step `tune.train`). A `forEach`
//! step gets one task per item (`train[0]`, `train[1]`…) that wait for what the step waits for,
//! and the step's own task waits for them all and gathers their outputs. A group gets a task
//! that starts when what its steps wait for outside it has ended (and its condition holds), lets
//! its steps run, and ends once they all have; a loop over a group gets one such task per item
//! (`tune[0]`), each with its own copy of the group's steps (`tune[0].train`). Loops whose items
//! an upstream step outputs are expanded when those are known ([`Plan::expand`]).

use petgraph::algo::toposort;
use petgraph::graph::DiGraph;
use sluice_spec::refs::{self, Ref};
use sluice_spec::state::Params;
use sluice_spec::{self as spec, Limits, Pipeline};
use std::collections::{HashMap, VecDeque};

/// The task graph of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub tasks: Vec<PlanTask>,
    /// Task name to index.
    pub index: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanTask {
    pub name: String,
    /// Indices of the tasks this one waits for.
    pub deps: Vec<usize>,
    /// Indices of the tasks that wait for this one.
    pub dependents: Vec<usize>,
    /// An exit handler (`onExit`): it runs once the other tasks of its group (or of the run,
    /// outside any group) have ended, whatever the outcome.
    pub exit_handler: bool,
    /// The pipeline step this task runs (see `Pipeline::task_step`); a loop's iterations share
    /// their loop's.
    pub step: usize,
    /// A loop iteration's item (`{{item}}`).
    pub item: Option<serde_json::Value>,
    /// A `forEach` step: the tasks of its iterations, which it waits for and gathers.
    pub iterations: Option<Vec<usize>>,
    /// A loop iteration: its loop's task.
    pub iteration_of: Option<usize>,
    /// The group task this one runs in (`None` at the top of the run).
    pub scope: Option<usize>,
    /// A group's task: the tasks that run in it.
    pub members: Option<Vec<usize>>,
    /// It runs a step that serves (`daemon`; never a group or a loop).
    pub daemon: bool,
}

impl PlanTask {
    /// An exit handler of the run itself (not of a group).
    pub fn run_exit_handler(&self) -> bool {
        self.exit_handler && self.scope.is_none()
    }
}

/// Builds the task graph. Fails on a dependency cycle (validation reports those first, with
/// places) and on a loop whose items are not a list.
pub fn plan(pipeline: &Pipeline, params: &Params, limits: &Limits) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let top: Vec<usize> = (0..pipeline.steps.len())
        .filter(|&i| pipeline.steps[i].parent.is_none())
        .collect();
    let mut b = Builder {
        p: pipeline,
        params,
        limits,
        plan: &mut plan,
        added: Vec::new(),
        loops: VecDeque::new(),
    };
    b.level(&top, "", None, false);
    for k in 0..pipeline.on_exit.len() {
        let name = pipeline.on_exit[k].name.clone();
        b.task(name, pipeline.steps.len() + k, None, None, true);
    }
    b.expand_queued()?;
    b.wire();
    let mut graph = DiGraph::<usize, ()>::with_capacity(plan.tasks.len(), plan.tasks.len());
    let nodes: Vec<_> = (0..plan.tasks.len()).map(|i| graph.add_node(i)).collect();
    for (i, t) in plan.tasks.iter().enumerate() {
        for &d in &t.deps {
            graph.add_edge(nodes[d], nodes[i], ());
        }
    }
    toposort(&graph, None).map_err(|cycle| {
        format!(
            "dependency cycle through step `{}`",
            plan.tasks[graph[cycle.node_id()]].name
        )
    })?;
    Ok(plan)
}

impl Plan {
    /// Adds the iterations of loop task `i` for `items` (a loop over an upstream output, now
    /// known), with copies of a looped group's steps. Returns the new tasks' indices.
    pub fn expand(
        &mut self,
        pipeline: &Pipeline,
        params: &Params,
        limits: &Limits,
        i: usize,
        items: Vec<serde_json::Value>,
    ) -> Result<Vec<usize>, String> {
        let before = self.tasks.len();
        let mut b = Builder {
            p: pipeline,
            params,
            limits,
            plan: self,
            added: Vec::new(),
            loops: VecDeque::new(),
        };
        if let Err(e) = b.iterations(i, items).and_then(|()| b.expand_queued()) {
            // Nothing of a loop that cannot expand stays planned.
            for t in self.tasks.drain(before..) {
                self.index.remove(&t.name);
            }
            for t in &mut self.tasks {
                if let Some(m) = t.members.as_mut() {
                    m.retain(|&x| x < before);
                }
                if t.iterations
                    .as_ref()
                    .is_some_and(|its| its.iter().any(|&x| x >= before))
                {
                    t.iterations = None;
                }
            }
            return Err(e);
        }
        let added = b.added.clone();
        b.wire();
        // The loop now waits for its iterations instead (if it has any).
        if self.tasks[i]
            .iterations
            .as_ref()
            .is_none_or(|its| its.is_empty())
        {
            return Ok(added);
        }
        for d in std::mem::take(&mut self.tasks[i].deps) {
            self.tasks[d].dependents.retain(|&x| x != i);
        }
        let its = self.tasks[i].iterations.clone().unwrap_or_default();
        for &it in &its {
            self.tasks[it].dependents.push(i);
        }
        self.tasks[i].deps = its;
        Ok(added)
    }

    /// The task that name `qualified` (a step's qualified name, as `Pipeline::lookup` gives it)
    /// means from task `from`: the one in the same copy of each group they share.
    pub fn instance(&self, from: usize, qualified: &str) -> Option<usize> {
        if !qualified.contains('.') {
            // A step at the top: one task, named as the step.
            return self.index.get(qualified).copied();
        }
        self.index
            .get(&instance_name(&self.tasks[from].name, qualified))
            .copied()
    }

    /// The item of the innermost loop around task `i` (or of the loop whose step's name is
    /// `of`), from the task itself outwards through its groups.
    pub fn item(
        &self,
        pipeline: &Pipeline,
        i: usize,
        of: Option<&str>,
    ) -> Option<&serde_json::Value> {
        let mut at = Some(i);
        while let Some(t) = at {
            let task = &self.tasks[t];
            if let Some(item) = &task.item {
                let step = pipeline.task_step(task.step);
                if of.is_none_or(|l| step.local_name() == l) {
                    return Some(item);
                }
            }
            at = task.scope;
        }
        None
    }
}

/// The name of the task step `qualified` has in the group copies task `from` runs in: each
/// group segment `G` becomes `from`'s `G[k]` where they share it.
fn instance_name(from: &str, qualified: &str) -> String {
    let from: Vec<&str> = from.split('.').collect();
    let q: Vec<&str> = qualified.split('.').collect();
    let mut out: Vec<&str> = Vec::with_capacity(q.len());
    let mut shared = true;
    for (k, seg) in q.iter().enumerate() {
        let theirs = from.get(k).copied();
        let base = theirs.map(|t| t.split('[').next().unwrap_or(t));
        if shared && k + 1 < q.len() && base == Some(*seg) {
            out.push(theirs.unwrap_or(seg));
        } else {
            shared = false;
            out.push(seg);
        }
    }
    out.join(".")
}

struct Builder<'a> {
    p: &'a Pipeline,
    params: &'a Params,
    limits: &'a Limits,
    plan: &'a mut Plan,
    /// Tasks added by this builder, to wire once all exist.
    added: Vec<usize>,
    /// Loop tasks whose items may be known now.
    loops: VecDeque<usize>,
}

impl Builder<'_> {
    fn task(
        &mut self,
        name: String,
        step: usize,
        scope: Option<usize>,
        item: Option<serde_json::Value>,
        exit_handler: bool,
    ) -> usize {
        let t = self.plan.tasks.len();
        self.plan.index.insert(name.clone(), t);
        let daemon = self.p.daemon(self.p.task_step(step)).is_some();
        self.plan.tasks.push(PlanTask {
            daemon,
            name,
            deps: Vec::new(),
            dependents: Vec::new(),
            exit_handler,
            step,
            item,
            iterations: None,
            iteration_of: None,
            scope,
            members: None,
        });
        if let Some(s) = scope {
            if let Some(m) = self.plan.tasks[s].members.as_mut() {
                m.push(t);
            }
        }
        self.added.push(t);
        t
    }

    /// Tasks for the steps of one level (the top, or one copy of a group): a group's steps
    /// follow it; loops are queued for expansion.
    fn level(&mut self, steps: &[usize], prefix: &str, scope: Option<usize>, handlers: bool) {
        for &s in steps {
            let step = &self.p.steps[s];
            let name = format!("{prefix}{}", step.local_name());
            let t = self.task(name, s, scope, None, handlers);
            if self.p.control(step).for_each.is_some() {
                self.loops.push_back(t);
            } else if step.group().is_some() {
                self.group_body(t, s);
            }
        }
    }

    /// The steps and exit handlers of group step `s`, in group task `t`.
    fn group_body(&mut self, t: usize, s: usize) {
        let Some(g) = self.p.steps[s].group() else {
            return;
        };
        self.plan.tasks[t].members = Some(Vec::new());
        let prefix = format!("{}.", self.plan.tasks[t].name);
        self.level(&g.steps, &prefix, Some(t), false);
        self.level(&g.on_exit, &prefix, Some(t), true);
    }

    fn expand_queued(&mut self) -> Result<(), String> {
        while let Some(t) = self.loops.pop_front() {
            if let Some(items) = static_items(self.p, self.params, self.plan, t, self.limits)? {
                self.iterations(t, items)?;
            }
        }
        Ok(())
    }

    /// The iterations of loop task `t`, within the limits on loop items and on a run's tasks
    /// (checked as they are made, so a loop that would pass one stops at once).
    fn iterations(&mut self, t: usize, items: Vec<serde_json::Value>) -> Result<(), String> {
        let (step, scope) = (self.plan.tasks[t].step, self.plan.tasks[t].scope);
        let name = self.plan.tasks[t].name.clone();
        let line = self.p.task_step(step).span.line;
        let max_tasks = self.limits.max_tasks;
        if items.len() > self.limits.max_loop_items {
            return Err(format!(
                "loop `{name}` (line {line}) has {} items, over the limit of {} items per loop",
                items.len(),
                self.limits.max_loop_items
            ));
        }
        let over = |plan: &Plan, more: usize| {
            (plan.tasks.len() + more > max_tasks).then(|| {
                format!(
                    "loop `{name}` (line {line}) takes the run past the limit of {max_tasks} tasks"
                )
            })
        };
        if let Some(e) = over(self.plan, items.len()) {
            return Err(e);
        }
        let mut its = Vec::with_capacity(items.len());
        for (k, item) in items.into_iter().enumerate() {
            let name = format!("{}[{k}]", self.plan.tasks[t].name);
            let it = self.task(name, step, scope, Some(item), false);
            self.plan.tasks[it].iteration_of = Some(t);
            self.group_body(it, step);
            its.push(it);
            if let Some(e) = over(self.plan, 0) {
                return Err(e);
            }
        }
        self.plan.tasks[t].iterations = Some(its);
        Ok(())
    }

    /// Sets the dependencies of the tasks added (every task they name exists by now).
    fn wire(&mut self) {
        for t in std::mem::take(&mut self.added) {
            let deps = self.deps_of(t);
            for d in deps {
                if d == t || self.plan.tasks[t].deps.contains(&d) {
                    continue;
                }
                self.plan.tasks[t].deps.push(d);
                self.plan.tasks[d].dependents.push(t);
            }
        }
    }

    fn deps_of(&self, t: usize) -> Vec<usize> {
        let task = &self.plan.tasks[t];
        if let Some(its) = task.iterations.as_ref().filter(|its| !its.is_empty()) {
            // A loop waits for its iterations, which wait for what it waits for (a loop with
            // none waits for that itself, and then ends at once).
            return its.clone();
        }
        let step = self.p.task_step(task.step);
        if task.exit_handler {
            // After the group's (or the run's) other tasks anyway; `dependsOn` orders them.
            return step
                .depends_on
                .iter()
                .filter_map(|d| match task.scope {
                    None => self
                        .p
                        .on_exit
                        .iter()
                        .position(|e| e.name == d.value)
                        .map(|k| self.p.steps.len() + k),
                    Some(_) => self
                        .p
                        .lookup(step, &d.value)
                        .and_then(|q| self.plan.instance(t, q))
                        .filter(|&j| self.plan.tasks[j].exit_handler),
                })
                .collect();
        }
        spec::dependencies(self.p, step)
            .iter()
            .filter_map(|q| self.plan.instance(t, q))
            .collect()
    }
}

/// The items of loop task `t` if they are known without running anything (a literal list, a
/// grid, a list parameter, a list in an enclosing loop's item); `None` for a list an upstream
/// step outputs.
fn static_items(
    p: &Pipeline,
    params: &Params,
    plan: &Plan,
    t: usize,
    limits: &Limits,
) -> Result<Option<Vec<serde_json::Value>>, String> {
    let step = p.task_step(plan.tasks[t].step);
    let Some(each) = p.control(step).for_each else {
        return Ok(None);
    };
    let name = &plan.tasks[t].name;
    let list = |what: String, v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(format!(
            "`forEach` of step `{name}`: {what} is {other}, not a list"
        )),
        None => Err(format!("`forEach` of step `{name}`: no {what}")),
    };
    match &each.value {
        serde_json::Value::Array(items) => Ok(Some(items.clone())),
        serde_json::Value::Object(axes) => {
            // Counted before it is built: a grid multiplies.
            let size = axes.values().try_fold(1usize, |n, v| {
                n.checked_mul(v.as_array().map_or(0, |a| a.len()))
            });
            match size {
                Some(n) if n <= limits.max_loop_items => Ok(Some(grid(axes))),
                _ => Err(format!(
                    "loop `{name}` (line {}) is a grid of {} items, over the limit of {} items per loop",
                    step.span.line,
                    size.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                    limits.max_loop_items
                )),
            }
        }
        serde_json::Value::String(text) => match refs::sole_ref(text) {
            Some(Ref::Param(n)) => list(format!("parameter `{n}`"), params.get(&n)),
            Some(Ref::Item { of, key }) => {
                let outer = plan.tasks[t]
                    .scope
                    .and_then(|s| plan.item(p, s, of.as_deref()));
                let v = match &key {
                    None => outer,
                    Some(k) => outer.and_then(|o| o.get(k)),
                };
                list(
                    format!("the loop item's `{}`", key.as_deref().unwrap_or("value")),
                    v,
                )
            }
            // A list an upstream step outputs: the loop expands when it is known.
            Some(Ref::StepOutput { .. }) => Ok(None),
            _ => Err(format!("`forEach` of step `{name}` is not a list")),
        },
        other => Err(format!("`forEach` of step `{name}` is {other}, not a list")),
    }
}

/// The items of a grid loop (`forEach: {lr: [0.1, 0.01], depth: [2, 4]}`): one object per
/// combination, keys in alphabetical order with the first varying slowest, as nested loops would
/// run them.
fn grid(axes: &serde_json::Map<String, serde_json::Value>) -> Vec<serde_json::Value> {
    let mut items = vec![serde_json::Map::new()];
    for (key, values) in axes {
        let values = values.as_array().cloned().unwrap_or_default();
        items = items
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |v| {
                    let mut m = partial.clone();
                    m.insert(key.clone(), v.clone());
                    m
                })
            })
            .collect();
    }
    items.into_iter().map(serde_json::Value::Object).collect()
}

/// The values of a run's parameters: those given, checked against their types, and the defaults.
/// Every problem is returned, each naming the parameter.
pub fn resolve_params(pipeline: &Pipeline, given: &Params) -> Result<Params, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Params::new();
    for (name, value) in given {
        match pipeline.param(name) {
            None => {
                let known: Vec<&str> = pipeline.params.iter().map(|p| p.name.as_str()).collect();
                let have = if known.is_empty() {
                    "it has none".to_string()
                } else {
                    format!("it has: {}", known.join(", "))
                };
                errors.push(format!("unknown parameter `{name}`: {have}"));
            }
            Some(decl) => match decl.ty.check(value) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => errors.push(format!("parameter `{name}` is {}: {e}", decl.ty)),
            },
        }
    }
    for decl in &pipeline.params {
        if out.contains_key(&decl.name) || given.contains_key(&decl.name) {
            continue;
        }
        match &decl.default {
            Some(v) => {
                out.insert(decl.name.clone(), v.clone());
            }
            None => errors.push(format!(
                "parameter `{}` ({}) has no default and needs a value",
                decl.name, decl.ty
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
