//! What steps may see of each other across groups, and what a group's outputs are.

use super::*;

/// What a step's output is: a parameter's type (a list when a loop gathers it) or an artifact's
/// kind.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output<'a> {
    pub ty: ParamType,
    pub kind: Option<&'a str>,
}

/// Output `name` of `producer` (a step, or a group through its output bindings), or the names
/// it has.
pub(super) fn output_of<'a>(
    p: &'a Pipeline,
    producer: &'a Step,
    kind: IoKind,
    name: &str,
) -> Result<Output<'a>, Vec<&'a str>> {
    let looped = p.control(producer).for_each.is_some();
    let gathered = |o: Output<'a>| Output {
        ty: if looped { ParamType::List } else { o.ty },
        kind: o.kind,
    };
    if let Some(g) = producer.group() {
        let bindings = match kind {
            IoKind::Param => &g.params,
            IoKind::Artifact => &g.artifacts,
        };
        let Some(b) = bindings.iter().find(|b| b.name == name) else {
            return Err(bindings.iter().map(|b| b.name.as_str()).collect());
        };
        let Some(Ref::StepOutput { step, name, .. }) = b.value.as_str().and_then(refs::sole_ref)
        else {
            return Ok(gathered(Output {
                ty: ParamType::String,
                kind: None,
            }));
        };
        let member = p.step(&format!("{}.{step}", producer.name));
        return match member.map(|m| output_of(p, m, kind, &name)) {
            Some(Ok(o)) => Ok(gathered(o)),
            // The binding itself is reported where the group is checked.
            _ => Ok(gathered(Output {
                ty: ParamType::String,
                kind: None,
            })),
        };
    }
    let Some(tpl) = p.template_of(producer) else {
        return Ok(Output {
            ty: ParamType::String,
            kind: None,
        });
    };
    match kind {
        IoKind::Param => match tpl.outputs.param(name) {
            Some(o) => Ok(gathered(Output {
                ty: o.ty,
                kind: None,
            })),
            None => Err(tpl.outputs.params.iter().map(|p| p.name.as_str()).collect()),
        },
        IoKind::Artifact => match tpl.outputs.artifact(name) {
            Some(a) => Ok(Output {
                ty: ParamType::String,
                kind: a.kind.as_deref(),
            }),
            None => Err(tpl
                .outputs
                .artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect()),
        },
    }
}

/// Whether step `s` may wait for (or read) step `q`: not a group it is in, and not an exit
/// handler unless it is one of the same group's itself.
pub(super) fn visible(p: &Pipeline, s: &Step, q: &str, span: Span, d: &mut Diagnostics) {
    let Some(&qi) = p.step_index.get(q) else {
        return;
    };
    if p.is_within(s, qi) {
        d.error(span, format!("step `{}` is inside group `{q}` and cannot wait for it or read its outputs; the group's own outputs are bound in its `outputs`", s.name));
    } else if p.steps[qi].handler && !s.handler {
        d.error(span, format!("`{q}` is an exit handler of its group; only the group's other exit handlers may wait for it"));
    }
}

/// A group's `outputs`: each exactly one output of one of its own steps.
pub(super) fn group_outputs(p: &Pipeline, s: &Step, g: &Group, d: &mut Diagnostics) {
    let all = g
        .params
        .iter()
        .map(|b| (b, IoKind::Param))
        .chain(g.artifacts.iter().map(|b| (b, IoKind::Artifact)));
    for (b, kind) in all {
        check_name(&b.name, "output", b.span, d);
        // A list: the first of these steps that ran (Kubeflow's dsl.OneOf).
        let choices: Vec<&serde_json::Value> = match &b.value {
            serde_json::Value::Array(items) if !items.is_empty() => items.iter().collect(),
            v => vec![v],
        };
        for value in choices {
            let r = value.as_str().and_then(refs::sole_ref);
            let Some(Ref::StepOutput {
                step,
                kind: k,
                name,
            }) = r.filter(|r| matches!(r, Ref::StepOutput { kind: k, .. } if *k == kind))
            else {
                d.error(b.span, format!("output `{}` of group `{}` must be exactly one `{{{{steps.STEP.outputs.{}.NAME}}}}` reference to one of its steps", b.name, s.name, kind.plural()));
                continue;
            };
            let member = p
                .step(&format!("{}.{step}", s.name))
                .filter(|m| m.parent.is_some_and(|g| p.steps[g].name == s.name) && !m.handler);
            let Some(member) = member else {
                let names: Vec<&str> = g.steps.iter().map(|&i| p.steps[i].local_name()).collect();
                d.error(b.span, format!("output `{}` of group `{}` names `{step}`, which is not one of its steps (it has: {})", b.name, s.name, names.join(", ")));
                continue;
            };
            if let Err(names) = output_of(p, member, k, &name) {
                let have = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                d.error(
                    b.span,
                    format!(
                        "step `{}` has no output {} `{name}` (it has: {have})",
                        member.name,
                        &kind.plural()[..kind.plural().len() - 1]
                    ),
                );
            }
        }
    }
}
