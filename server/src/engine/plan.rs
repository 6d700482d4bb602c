//! Planning: a pipeline and its parameter values become a task graph.

use petgraph::algo::toposort;
use petgraph::graph::DiGraph;
use sluice_sdk::api::Params;
use sluice_sdk::spec::refs::{self, Ref};
use sluice_sdk::spec::{self, Pipeline};

/// The task graph of a run: one task per step, in the pipeline's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tasks: Vec<PlanTask>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanTask {
    pub name: String,
    /// Indices of the tasks this one waits for.
    pub deps: Vec<usize>,
    /// Indices of the tasks that wait for this one.
    pub dependents: Vec<usize>,
    /// An exit handler (`onExit`): it runs once every other task has ended, whatever the outcome.
    pub exit_handler: bool,
    /// The pipeline step this task runs (see `Pipeline::task_step`); a loop's iterations share
    /// their loop's.
    pub step: usize,
    /// A loop iteration's item (`{{item}}`).
    pub item: Option<serde_json::Value>,
    /// A `forEach` step: the tasks of its iterations, which it waits for and gathers.
    pub iterations: Option<Vec<usize>>,
}

/// Builds the task graph. A `forEach` step becomes one task per item (named `step[k]`, appended
/// after the steps and exit handlers) that wait for what the step waits for, and the step's own
/// task waits for them all and gathers their outputs. Fails on a dependency cycle (validation
/// reports those first, with places) and on a loop whose items are not a list.
pub fn plan(pipeline: &Pipeline, params: &Params) -> Result<Plan, String> {
    let n = pipeline.steps.len() + pipeline.on_exit.len();
    let mut graph = DiGraph::<usize, ()>::with_capacity(n, n);
    let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
    let mut tasks: Vec<PlanTask> = pipeline
        .task_steps()
        .enumerate()
        .map(|(i, s)| PlanTask {
            name: s.name.clone(),
            deps: Vec::new(),
            dependents: Vec::new(),
            exit_handler: i >= pipeline.steps.len(),
            step: i,
            item: None,
            iterations: None,
        })
        .collect();
    let exit_index = |name: &str| {
        pipeline
            .on_exit
            .iter()
            .position(|e| e.name == name)
            .map(|k| pipeline.steps.len() + k)
    };
    for (i, step) in pipeline.task_steps().enumerate() {
        // Exit handlers come after everything else anyway; among themselves, `dependsOn` orders them.
        let deps: Vec<usize> = if tasks[i].exit_handler {
            step.depends_on
                .iter()
                .filter_map(|d| exit_index(&d.value))
                .collect()
        } else {
            spec::dependencies(pipeline, step)
                .iter()
                .map(|d| pipeline.step_index[d])
                .collect()
        };
        for j in deps {
            if j == i || tasks[i].deps.contains(&j) {
                continue;
            }
            tasks[i].deps.push(j);
            tasks[j].dependents.push(i);
            graph.add_edge(nodes[j], nodes[i], ());
        }
    }
    for (i, step) in pipeline.steps.iter().enumerate() {
        let Some(each) = pipeline.control(step).for_each else {
            continue;
        };
        let items = match &each.value {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Object(axes) => grid(axes),
            serde_json::Value::String(text) => match refs::sole_ref(text) {
                Some(Ref::Param(name)) => match params.get(&name) {
                    Some(serde_json::Value::Array(items)) => items.clone(),
                    Some(other) => {
                        return Err(format!(
                            "`forEach` of step `{}`: parameter `{name}` is {other}, not a list",
                            step.name
                        ))
                    }
                    None => {
                        return Err(format!(
                            "`forEach` of step `{}`: no parameter `{name}`",
                            step.name
                        ))
                    }
                },
                // A list an upstream step outputs: the loop expands when it is known.
                Some(Ref::StepOutput { .. }) => continue,
                _ => return Err(format!("`forEach` of step `{}` is not a list", step.name)),
            },
            other => {
                return Err(format!(
                    "`forEach` of step `{}` is {other}, not a list",
                    step.name
                ))
            }
        };
        if items.is_empty() {
            // Nothing to run: the loop ends, with empty lists, when its own dependencies have.
            tasks[i].iterations = Some(Vec::new());
            continue;
        }
        let deps = std::mem::take(&mut tasks[i].deps);
        let mut iterations = Vec::new();
        for (k, item) in items.into_iter().enumerate() {
            let t = tasks.len();
            let node = graph.add_node(t);
            for &d in &deps {
                tasks[d].dependents.retain(|&x| x != i);
                tasks[d].dependents.push(t);
                graph.add_edge(nodes[d], node, ());
            }
            tasks.push(PlanTask {
                name: format!("{}[{k}]", step.name),
                deps: deps.clone(),
                dependents: vec![i],
                exit_handler: false,
                step: i,
                item: Some(item),
                iterations: None,
            });
            iterations.push(t);
        }
        tasks[i].deps = iterations.clone();
        tasks[i].iterations = Some(iterations);
    }
    toposort(&graph, None).map_err(|cycle| {
        format!(
            "dependency cycle through step `{}`",
            tasks[graph[cycle.node_id()]].name
        )
    })?;
    Ok(Plan { tasks })
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
