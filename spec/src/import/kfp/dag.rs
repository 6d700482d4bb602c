//! A KFP DAG's tasks as sluice steps: executor tasks as steps using their component, sub-DAGs
//! (nested pipelines, conditions, loops, exit handlers' bodies) as groups, exit tasks as their
//! group's exit handlers. Inputs are followed out to what feeds them, so each binding is a plain
//! sluice value or reference.

use super::*;
use crate::{Binding, Cache, Group, Outputs, Retry, Step, Uses};
use serde_json::Value;

/// What a DAG's own inputs are bound to, from outside it.
#[derive(Default, Clone)]
pub(crate) struct Env {
    /// Parameter inputs: a literal or a `{{…}}` reference.
    pub params: HashMap<String, Value>,
    /// Artifact inputs: a `{{steps.S.outputs.artifacts.A}}` reference.
    pub artifacts: HashMap<String, String>,
}

pub(crate) struct Body {
    pub steps: Vec<Parsed>,
    pub on_exit: Vec<Parsed>,
    pub outputs: Outputs,
}

/// The name a DAG's output has in sluice: kfp prefixes the outputs it makes up for sub-DAGs
/// with `pipelinechannel--`, which says nothing and would make names long.
pub(crate) fn out_name(k: &str) -> &str {
    k.strip_prefix("pipelinechannel--").unwrap_or(k)
}

const TASK_KEYS: &[&str] = &[
    "taskInfo",
    "componentRef",
    "dependentTasks",
    "inputs",
    "triggerPolicy",
    "parameterIterator",
    "artifactIterator",
    "iteratorPolicy",
    "retryPolicy",
    "cachingOptions",
];

/// The steps of DAG `node`, whose inputs are bound as `env` says.
pub(crate) fn body(
    ir: &mut Ir,
    node: &Node,
    env: &Env,
    path: &str,
    depth: usize,
    d: &mut Diagnostics,
) -> Body {
    let mut out = Body {
        steps: Vec::new(),
        on_exit: Vec::new(),
        outputs: Outputs::default(),
    };
    if depth > MAX_DEPTH {
        d.error(
            node.span,
            format!("sub-DAGs nest more than {MAX_DEPTH} deep at `{path}` (the limit)"),
        );
        return out;
    }
    let Some(f) = Fields::new(
        node,
        &format!("the DAG of {path}"),
        &[&["tasks", "outputs"]],
        d,
    ) else {
        return out;
    };
    let tasks = f
        .get("tasks")
        .map(|n| entries(n, "tasks", d))
        .unwrap_or_default();
    // Exit tasks (run whatever their upstream did) become their group's exit handlers.
    let mut handlers: Vec<(String, Parsed, Span)> = Vec::new();
    for (k, v) in tasks {
        // Read without checking: `task` checks every field of the task once.
        let exit = field(v, "triggerPolicy")
            .and_then(|n| field(n, "strategy"))
            .and_then(|n| n.scalar_text().map(|s| (s, n.span)));
        let exit = match exit {
            Some((s, _)) if s == "ALL_UPSTREAM_TASKS_COMPLETED" => true,
            Some((s, _))
                if s == "ALL_UPSTREAM_TASKS_SUCCEEDED" || s == "TRIGGER_STRATEGY_UNSPECIFIED" =>
            {
                false
            }
            Some((s, span)) => {
                d.error(
                    span,
                    format!(
                        "task `{}` has trigger strategy `{s}`, which sluice does not know",
                        k.name
                    ),
                );
                false
            }
            None => false,
        };
        let Some(p) = task(ir, &k.name, k.span, v, env, path, depth, exit, d) else {
            continue;
        };
        if exit {
            let upstream: Vec<String> = p.step.depends_on.iter().map(|s| s.value.clone()).collect();
            match upstream.as_slice() {
                [g] => handlers.push((g.clone(), p, k.span)),
                _ => d.error(k.span, format!("task `{}` runs when its upstream tasks complete, which sluice runs as an exit handler: it must wait for exactly one dsl.ExitHandler group", k.name)),
            }
        } else {
            out.steps.push(p);
        }
    }
    for (g, mut h, span) in handlers {
        h.step.depends_on.clear();
        match out.steps.iter_mut().find(|p| p.step.name == g) {
            Some(group) if group.step.group().is_some() => group.on_exit.push(h),
            _ => d.error(span, format!("exit task `{}` waits for `{g}`, which is not a dsl.ExitHandler group in the same DAG", h.step.name)),
        }
    }
    if let Some(o) = f.get("outputs") {
        out.outputs = dag_outputs(o, path, d);
    }
    out
}

/// The value of `key` in mapping `node`, if it is one and has it.
fn field<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.kind {
        Kind::Map(e) => e.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

/// A DAG's `outputs`: each bound to an output of one of its tasks (or, for `dsl.OneOf`, of the
/// first of several that ran).
fn dag_outputs(node: &Node, path: &str, d: &mut Diagnostics) -> Outputs {
    let mut out = Outputs::default();
    let what = format!("the outputs of {path}");
    let Some(f) = Fields::new(node, &what, &[&["parameters", "artifacts"]], d) else {
        return out;
    };
    let sel = |n: &Node, key: &str, kind: &str, d: &mut Diagnostics| -> Option<String> {
        let s = Fields::new(n, "a selector", &[&["producerSubtask", key]], d)?;
        let task = s
            .required("producerSubtask", "a selector", d)
            .and_then(|n| string(n, "producerSubtask", d))?;
        let name = s
            .required(key, "a selector", d)
            .and_then(|n| string(n, key, d))?;
        Some(format!(
            "{{{{steps.{}.outputs.{kind}.{}}}}}",
            task.value,
            out_name(&name.value)
        ))
    };
    if let Some(ps) = f.get("parameters") {
        for (k, v) in entries(ps, "parameters", d) {
            let Some(p) = Fields::new(
                v,
                &format!("output `{}`", k.name),
                &[&["valueFromParameter", "valueFromOneof"]],
                d,
            ) else {
                continue;
            };
            let value = if let Some(n) = p.get("valueFromParameter") {
                sel(n, "outputParameterKey", "params", d).map(Value::String)
            } else if let Some(n) = p.get("valueFromOneof") {
                Fields::new(n, "valueFromOneof", &[&["parameterSelectors"]], d)
                    .and_then(|o| o.required("parameterSelectors", "valueFromOneof", d))
                    .map(|list| match &list.kind {
                        Kind::Seq(items) => Value::Array(
                            items
                                .iter()
                                .filter_map(|i| sel(i, "outputParameterKey", "params", d))
                                .map(Value::String)
                                .collect(),
                        ),
                        _ => Value::Array(Vec::new()),
                    })
            } else {
                d.error(
                    v.span,
                    format!("output `{}` of {path} is bound to nothing", k.name),
                );
                None
            };
            if let Some(value) = value {
                out.params.push(Binding {
                    name: out_name(&k.name).to_string(),
                    value,
                    span: k.span,
                });
            }
        }
    }
    if let Some(arts) = f.get("artifacts") {
        for (k, v) in entries(arts, "artifacts", d) {
            let Some(a) = Fields::new(
                v,
                &format!("output `{}`", k.name),
                &[&["artifactSelectors"]],
                d,
            ) else {
                continue;
            };
            let Some(Kind::Seq(items)) = a
                .required("artifactSelectors", "an output artifact", d)
                .map(|n| &n.kind)
            else {
                continue;
            };
            let refs: Vec<Value> = items
                .iter()
                .filter_map(|i| sel(i, "outputArtifactKey", "artifacts", d))
                .map(Value::String)
                .collect();
            let value = match <[Value; 1]>::try_from(refs) {
                Ok([one]) => one,
                Err(many) => Value::Array(many),
            };
            out.artifacts.push(Binding {
                name: out_name(&k.name).to_string(),
                value,
                span: k.span,
            });
        }
    }
    out
}

/// One task of a DAG as a step (and, for a sub-DAG, the steps inside it).
#[allow(clippy::too_many_arguments)]
fn task(
    ir: &mut Ir,
    key: &str,
    key_span: Span,
    node: &Node,
    env: &Env,
    path: &str,
    depth: usize,
    exit: bool,
    d: &mut Diagnostics,
) -> Option<Parsed> {
    let what = format!("task `{key}`");
    let f = Fields::new(node, &what, &[TASK_KEYS], d)?;
    if let Some(n) = f.get("artifactIterator") {
        d.error(n.span, format!("{what} loops over artifacts (dsl.ParallelFor over a list of artifacts), which sluice does not run yet; loop over parameters"));
    }
    let comp_name = f
        .required("componentRef", &what, d)
        .and_then(|n| Fields::new(n, "componentRef", &[&["name"]], d))
        .and_then(|c| {
            c.required("name", "componentRef", d)
                .and_then(|n| string(n, "name", d))
        })?;
    let Some(comp) = ir.components.get(comp_name.value.as_str()).copied() else {
        d.error(
            comp_name.span,
            format!(
                "{what} uses component `{}`, which `components` does not have",
                comp_name.value
            ),
        );
        return None;
    };
    let display_name = f
        .get("taskInfo")
        .and_then(|n| Fields::new(n, "taskInfo", &[&["name"]], d))
        .and_then(|t| t.get("name").and_then(|n| string(n, "name", d)))
        .map(|s| s.value)
        .filter(|n| n != key);
    let depends_on: Vec<Spanned<String>> = f
        .get("dependentTasks")
        .and_then(|n| string_list(n, "dependentTasks", d))
        .unwrap_or_default();
    let is_dag = field(comp, "dag").is_some();
    // The component's declared input types, to type constants and find status inputs (its
    // declarations are checked, once, where its sluice component is made).
    let declared = field(comp, "inputDefinitions")
        .map(|n| io_defs(n, "", &mut Diagnostics::new("")).typed)
        .unwrap_or_default();
    let (params, artifacts) = match f.get("inputs") {
        Some(n) => super::inputs::inputs(n, &what, env, &declared, exit, d),
        None => (Vec::new(), Vec::new()),
    };
    let mut control = Control::default();
    if let Some(tp) = f.get("triggerPolicy") {
        if let Some(t) = Fields::new(tp, "triggerPolicy", &[&["condition", "strategy"]], d) {
            if let Some(c) = t.get("condition").and_then(|n| string(n, "condition", d)) {
                let bound: HashMap<&str, &Value> =
                    params.iter().map(|b| (b.name.as_str(), &b.value)).collect();
                control.when =
                    cel::translate(&c.value, c.span, &bound, d).map(|w| Spanned::new(w, c.span));
            }
        }
    }
    if let Some(r) = f.get("retryPolicy") {
        control.retry = retry(r, &what, d);
    }
    if let Some(c) = f.get("cachingOptions") {
        control.cache = cache(c, d);
    }
    if let Some(ip) = f.get("iteratorPolicy") {
        if let Some(i) = Fields::new(ip, "iteratorPolicy", &[&["parallelismLimit"]], d) {
            if let Some(n) = i.get("parallelismLimit") {
                match n.kind {
                    Kind::Int(l) if l > 0 => {
                        control.parallelism = Some(Spanned::new(l as u32, n.span))
                    }
                    Kind::Int(0) => {}
                    _ => d.error(n.span, "`parallelismLimit` must be a whole number"),
                }
            }
        }
    }
    let mut inner_env = Env::default();
    for b in &params {
        inner_env.params.insert(b.name.clone(), b.value.clone());
    }
    for b in &artifacts {
        if let Some(s) = b.value.as_str() {
            inner_env.artifacts.insert(b.name.clone(), s.to_string());
        }
    }
    if let Some(it) = f.get("parameterIterator") {
        if !is_dag {
            d.error(it.span, format!("{what} iterates but is not a sub-DAG; kfp compiles every dsl.ParallelFor into one"));
        }
        if let Some(i) = Fields::new(it, "parameterIterator", &[&["items", "itemInput"]], d) {
            let item = i
                .required("itemInput", "parameterIterator", d)
                .and_then(|n| string(n, "itemInput", d));
            let items = i
                .required("items", "parameterIterator", d)
                .and_then(|n| Fields::new(n, "items", &[&["raw", "inputParameter"]], d));
            if let (Some(item), Some(items)) = (item, items) {
                inner_env.params.insert(
                    item.value,
                    Value::String(format!("{{{{loops.{key}.item}}}}")),
                );
                if let Some(raw) = items.get("raw").and_then(|n| string(n, "raw", d)) {
                    match serde_json::from_str::<Value>(&raw.value) {
                        Ok(v @ Value::Array(_)) => {
                            control.for_each = Some(Spanned::new(v, raw.span))
                        }
                        _ => d.error(raw.span, format!("the items of {what} are not a JSON list")),
                    }
                } else if let Some(p) = items
                    .get("inputParameter")
                    .and_then(|n| string(n, "inputParameter", d))
                {
                    match params.iter().find(|b| b.name == p.value) {
                        Some(b) => control.for_each = Some(Spanned::new(b.value.clone(), p.span)),
                        None => d.error(
                            p.span,
                            format!(
                                "{what} iterates over input `{}`, which it is not given",
                                p.value
                            ),
                        ),
                    }
                } else {
                    d.error(it.span, format!("{what} iterates over nothing: `items` has neither `raw` nor `inputParameter`"));
                }
            }
        }
    }
    let mut step = Step {
        name: key.to_string(),
        description: None,
        uses: Uses::Group(Box::default()),
        params: Vec::new(),
        artifacts: Vec::new(),
        depends_on,
        control,
        span: key_span,
        parent: None,
        handler: false,
        display_name,
    };
    if is_dag {
        let sub = Fields::new(
            comp,
            &format!("component `{}`", comp_name.value),
            &[&[
                "dag",
                "inputDefinitions",
                "outputDefinitions",
                "description",
            ]],
            d,
        )?;
        let inner = body(
            ir,
            sub.get("dag")?,
            &inner_env,
            &format!("{path}.{key}"),
            depth + 1,
            d,
        );
        if inner.steps.is_empty() {
            d.error(key_span, format!("{what} is a sub-DAG with no tasks"));
        }
        // kfp writes its default caching option on sub-DAGs too: each task inside has its own.
        step.control.cache = None;
        if step.control.retry.take().is_some() {
            d.error(key_span, format!("{what} sets a retry policy on a sub-DAG, which sluice applies to single tasks only"));
        }
        step.uses = Uses::Group(Box::new(Group {
            params: inner.outputs.params,
            artifacts: inner.outputs.artifacts,
            ..Group::default()
        }));
        return Some(Parsed {
            step,
            steps: inner.steps,
            on_exit: inner.on_exit,
        });
    }
    if step.control.for_each.is_some() || step.control.parallelism.is_some() {
        step.control.for_each = None;
        step.control.parallelism = None;
    }
    let comp_id = executor_component(ir, &comp_name.value, comp, comp_name.span, d)?;
    step.uses = Uses::Component(Spanned::new(comp_id, comp_name.span));
    step.params = params;
    step.artifacts = artifacts;
    Some(Parsed {
        step,
        steps: Vec::new(),
        on_exit: Vec::new(),
    })
}

fn retry(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Spanned<Retry>> {
    let f = Fields::new(
        node,
        "retryPolicy",
        &[&[
            "maxRetryCount",
            "backoffDuration",
            "backoffFactor",
            "backoffMaxDuration",
        ]],
        d,
    )?;
    let dur = |k: &str, d: &mut Diagnostics| {
        let n = f.get(k)?;
        let t = n.scalar_text().unwrap_or_default();
        let v = crate::parse_duration_ms(&t).or_else(|| (t == "0s").then_some(0));
        if v.is_none() {
            d.error(n.span, format!("`{k}` of {what} is not a duration: `{t}`"));
        }
        v
    };
    let limit = match f.get("maxRetryCount").map(|n| (&n.kind, n.span)) {
        Some((Kind::Int(i), _)) if *i >= 0 => *i as u32,
        Some((_, span)) => {
            d.error(
                span,
                format!("`maxRetryCount` of {what} must be a whole number"),
            );
            0
        }
        None => 0,
    };
    Some(Spanned::new(
        Retry {
            limit,
            backoff_initial_ms: dur("backoffDuration", d).unwrap_or(0),
            backoff_factor: f
                .get("backoffFactor")
                .and_then(|n| n.to_json().as_f64())
                .filter(|x| *x >= 1.0)
                .unwrap_or(2.0),
            backoff_max_ms: dur("backoffMaxDuration", d).unwrap_or(3_600_000),
        },
        node.span,
    ))
}

fn cache(node: &Node, d: &mut Diagnostics) -> Option<Spanned<Cache>> {
    let f = Fields::new(node, "cachingOptions", &[&["enableCache", "cacheKey"]], d)?;
    let enabled = matches!(
        f.get("enableCache").map(|n| &n.kind),
        Some(Kind::Bool(true))
    );
    let key = f
        .get("cacheKey")
        .and_then(|n| string(n, "cacheKey", d))
        .map(|s| s.value)
        .filter(|k| !k.is_empty());
    Some(Spanned::new(
        Cache {
            enabled,
            max_age_secs: None,
            key,
        },
        node.span,
    ))
}

/// `dsl.importer`: a step with no container that imports a file or directory of the worker's
/// host (`file:///PATH`) as its output `artifact`.
pub(super) fn importer_template(
    node: &Node,
    what: &str,
    inputs: &IoDefs,
    outputs: &IoDefs,
    d: &mut Diagnostics,
) -> Option<Template> {
    let f = Fields::new(
        node,
        &format!("{what} importer"),
        &[&[
            "artifactUri",
            "typeSchema",
            "metadata",
            "reimport",
            "downloadToWorkspace",
        ]],
        d,
    )?;
    if let Some(n) = f.get("downloadToWorkspace") {
        if matches!(n.kind, Kind::Bool(true)) {
            d.error(
                n.span,
                format!("{what} downloads to the pipeline's workspace, which sluice does not run"),
            );
        }
    }
    let uri = f
        .required("artifactUri", what, d)
        .and_then(|n| Fields::new(n, "artifactUri", &[&["constant", "runtimeParameter"]], d))?;
    let mut importer = crate::kfp::Importer {
        metadata: f.get("metadata").map(Node::to_json),
        ..Default::default()
    };
    if let Some(c) = uri.get("constant").and_then(|n| string(n, "constant", d)) {
        if let Err(e) = crate::kfp::import_path(&c.value) {
            d.error(c.span, format!("{what}: {e}"));
        }
        importer.uri = Some(c.value);
    } else if let Some(p) = uri
        .get("runtimeParameter")
        .and_then(|n| string(n, "runtimeParameter", d))
    {
        if !inputs.typed.iter().any(|i| i.name == p.value) {
            d.error(
                p.span,
                format!(
                    "{what} takes its URI from input `{}`, which it does not declare",
                    p.value
                ),
            );
        }
        importer.uri_param = Some(p.value);
    } else {
        d.error(node.span, format!("{what} names no URI"));
    }
    Some(Template {
        inputs: crate::Io {
            params: inputs.params.clone(),
            artifacts: Vec::new(),
        },
        outputs: crate::Io {
            params: Vec::new(),
            artifacts: outputs.artifacts.clone(),
        },
        kfp: Some(Box::new(Launch {
            inputs: inputs.typed.clone(),
            outputs: outputs.typed.clone(),
            importer: Some(importer),
            ..Launch::default()
        })),
        ..Template::default()
    })
}
