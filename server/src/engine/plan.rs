//! Planning: a pipeline and its parameter values become a task graph.

use petgraph::algo::toposort;
use petgraph::graph::DiGraph;
use sluice_sdk::api::Params;
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
}

/// Builds the task graph. Fails on a dependency cycle (validation reports those first, with places).
pub fn plan(pipeline: &Pipeline) -> Result<Plan, String> {
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
    toposort(&graph, None).map_err(|cycle| {
        format!(
            "dependency cycle through step `{}`",
            tasks[graph[cycle.node_id()]].name
        )
    })?;
    Ok(Plan { tasks })
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
