//! A KFP task's inputs followed out to what feeds them: a DAG input (from the `Env` around it),
//! another task's output, a loop's item (or a field of it), or a constant, each made a plain
//! sluice value or reference.

use super::dag::{out_name, Env};
use super::*;
use crate::Binding;
use serde_json::Value;

/// A task's `inputs`, each followed to what feeds it.
pub(super) fn inputs(
    node: &Node,
    what: &str,
    env: &Env,
    declared: &[Io],
    exit: bool,
    d: &mut Diagnostics,
) -> (Vec<Binding>, Vec<Binding>) {
    let mut params = Vec::new();
    let mut artifacts = Vec::new();
    let Some(f) = Fields::new(
        node,
        &format!("the inputs of {what}"),
        &[&["parameters", "artifacts"]],
        d,
    ) else {
        return (params, artifacts);
    };
    if let Some(ps) = f.get("parameters") {
        for (k, v) in entries(ps, "parameters", d) {
            let at = format!("input `{}` of {what}", k.name);
            let Some(p) = Fields::new(
                v,
                &at,
                &[&[
                    "componentInputParameter",
                    "taskOutputParameter",
                    "runtimeValue",
                    "taskFinalStatus",
                    "parameterExpressionSelector",
                ]],
                d,
            ) else {
                continue;
            };
            let ty = declared
                .iter()
                .find(|i| i.name == k.name)
                .and_then(|i| match i.ty {
                    IoType::Parameter { ty } => Some(ty),
                    _ => None,
                });
            let value = if let Some(n) = p
                .get("componentInputParameter")
                .and_then(|n| string(n, "componentInputParameter", d))
            {
                match env.params.get(&n.value) {
                    Some(v) => Some(v.clone()),
                    None => {
                        d.error(
                            n.span,
                            format!(
                                "{at} reads `{}`, which the enclosing DAG is not given",
                                n.value
                            ),
                        );
                        None
                    }
                }
            } else if let Some(n) = p.get("taskOutputParameter") {
                Fields::new(
                    n,
                    "taskOutputParameter",
                    &[&["producerTask", "outputParameterKey"]],
                    d,
                )
                .and_then(|o| {
                    let task = o
                        .required("producerTask", "taskOutputParameter", d)
                        .and_then(|n| string(n, "producerTask", d))?;
                    let key = o
                        .required("outputParameterKey", "taskOutputParameter", d)
                        .and_then(|n| string(n, "outputParameterKey", d))?;
                    Some(Value::String(format!(
                        "{{{{steps.{}.outputs.params.{}}}}}",
                        task.value,
                        out_name(&key.value)
                    )))
                })
            } else if let Some(n) = p.get("runtimeValue") {
                Fields::new(n, "runtimeValue", &[&["constant", "constantValue"]], d).and_then(|r| {
                    let c = r.get("constant").or_else(|| r.get("constantValue"))?;
                    let v = c.to_json();
                    let v = ty.map(|t| t.normalize(v.clone())).unwrap_or(v);
                    constant(v, c.span, &at, d)
                })
            } else if let Some(n) = p.get("taskFinalStatus") {
                if !exit {
                    d.error(n.span, format!("{at} reads a task's final status, which only an exit handler's task may"));
                }
                Some(Value::String("{{group.status}}".into()))
            } else {
                d.error(v.span, format!("{at} is bound to nothing"));
                None
            };
            let Some(mut value) = value else { continue };
            if let Some(sel) = p
                .get("parameterExpressionSelector")
                .and_then(|n| string(n, "parameterExpressionSelector", d))
            {
                match select(&value, &sel.value) {
                    Some(v) => value = v,
                    None => {
                        d.error(sel.span, format!("{at} selects `{}` from its value; sluice selects fields of a loop's items only (parseJson(string_value)[\"key\"])", sel.value));
                        continue;
                    }
                }
            }
            params.push(Binding {
                name: k.name.clone(),
                value,
                span: k.span,
            });
        }
    }
    if let Some(arts) = f.get("artifacts") {
        for (k, v) in entries(arts, "artifacts", d) {
            let at = format!("input artifact `{}` of {what}", k.name);
            let Some(a) = Fields::new(
                v,
                &at,
                &[&["taskOutputArtifact", "componentInputArtifact"]],
                d,
            ) else {
                continue;
            };
            let value = if let Some(n) = a.get("taskOutputArtifact") {
                Fields::new(
                    n,
                    "taskOutputArtifact",
                    &[&["producerTask", "outputArtifactKey"]],
                    d,
                )
                .and_then(|o| {
                    let task = o
                        .required("producerTask", "taskOutputArtifact", d)
                        .and_then(|n| string(n, "producerTask", d))?;
                    let key = o
                        .required("outputArtifactKey", "taskOutputArtifact", d)
                        .and_then(|n| string(n, "outputArtifactKey", d))?;
                    Some(format!(
                        "{{{{steps.{}.outputs.artifacts.{}}}}}",
                        task.value,
                        out_name(&key.value)
                    ))
                })
            } else if let Some(n) = a
                .get("componentInputArtifact")
                .and_then(|n| string(n, "componentInputArtifact", d))
            {
                let v = env.artifacts.get(&n.value).cloned();
                if v.is_none() {
                    d.error(
                        n.span,
                        format!(
                            "{at} reads `{}`, which the enclosing DAG is not given",
                            n.value
                        ),
                    );
                }
                v
            } else {
                d.error(v.span, format!("{at} is bound to nothing"));
                None
            };
            if let Some(value) = value {
                artifacts.push(Binding {
                    name: k.name.clone(),
                    value: Value::String(value),
                    span: k.span,
                });
            }
        }
    }
    (params, artifacts)
}

/// A constant as a binding: the run's facts KFP lets a constant name become sluice's references;
/// any other `{{` would be read as a reference, and is refused.
fn constant(v: Value, span: Span, at: &str, d: &mut Diagnostics) -> Option<Value> {
    let Value::String(s) = &v else { return Some(v) };
    if !s.contains("{{") {
        return Some(v);
    }
    let mapped = s
        .replace("{{$.pipeline_job_name}}", "{{run.name}}")
        .replace("{{$.pipeline_job_uuid}}", "{{run.id}}")
        .replace("{{$.pipeline_task_name}}", "{{task.name}}")
        .replace(
            "{{$.pipeline_task_uuid}}",
            "{{run.id}}.{{task.name}}.{{task.attempt}}",
        );
    if mapped.contains("{{$") {
        d.error(
            span,
            format!("{at} is the constant `{s}`, whose placeholder sluice does not fill here"),
        );
        return None;
    }
    Some(Value::String(mapped))
}

/// `parseJson(string_value)["key"]` of a loop item: the item's field.
fn select(value: &Value, sel: &str) -> Option<Value> {
    let rest = sel
        .trim()
        .strip_prefix("parseJson(string_value)[")?
        .strip_suffix(']')?;
    let key = rest.trim().trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let s = value.as_str()?;
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    (inner.starts_with("loops.") && inner.ends_with(".item"))
        .then(|| Value::String(format!("{{{{{inner}.{key}}}}}")))
}
