//! Cross-checks of a parsed pipeline: names, references, dependencies, cycles and types.

use super::refs::{self, IoKind, Ref};
use super::*;
use crate::diag::did_you_mean;
use std::collections::{BTreeSet, HashMap};

mod bindings;
mod groups;
use bindings::{artifact_binding, param_binding, run_artifact};
use groups::{group_outputs, output_of, visible, Output};

/// Names of parameters, artifacts, steps and components: a letter or `_`, then letters, digits, `_` or `-`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 63
}

fn check_name(name: &str, what: &str, span: Span, d: &mut Diagnostics) {
    if !is_name(name) {
        d.error(
            span,
            format!("invalid {what} name `{name}`: use letters, digits, `_` and `-`, starting with a letter (at most 63)"),
        );
    }
}

/// Where a template is used from: a component may see only its own inputs and outputs; an inline
/// step may also name pipeline parameters and other steps' outputs directly.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Component,
    Step(&'a Step),
}

pub(super) fn pipeline(p: &Pipeline, d: &mut Diagnostics) {
    if p.name.is_empty() {
        // Reported by the parser as a missing field.
    } else if !p
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || p.name.len() > 128
    {
        d.error(
            p.span,
            format!(
                "invalid pipeline name `{}`: use letters, digits, `-`, `_` and `.` (at most 128)",
                p.name
            ),
        );
    }
    for param in &p.params {
        check_name(&param.name, "parameter", param.span, d);
    }
    for a in &p.artifacts {
        check_name(&a.name, "artifact", a.span, d);
    }
    for c in &p.components {
        check_name(&c.name, "component", c.span, d);
        template(p, &c.template, Scope::Component, d);
        loop_settings(&c.control, d);
    }
    if p.steps.is_empty() {
        d.error(
            p.span,
            "the pipeline has no steps: `steps` must list at least one",
        );
    }
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for s in p.task_steps() {
        check_name(s.local_name(), "step", s.span, d);
        if let Some(first) = seen.insert(&s.name, s.span) {
            d.error(
                s.span,
                format!(
                    "duplicate step name `{}` (first used at line {})",
                    s.name, first.line
                ),
            );
        }
        step(p, s, d);
    }
    cycles(p, d);
}

fn loop_settings(c: &Control, d: &mut Diagnostics) {
    if let Some(each) = &c.for_each {
        let ok = match &each.value {
            Value::Array(_) => true,
            // A grid: every combination of the lists, as nested loops.
            Value::Object(axes) => !axes.is_empty() && axes.values().all(Value::is_array),
            Value::String(text) => matches!(
                refs::sole_ref(text),
                Some(Ref::Param(_))
                    | Some(Ref::Item { .. })
                    | Some(Ref::StepOutput {
                        kind: IoKind::Param,
                        ..
                    })
            ),
            _ => false,
        };
        if !ok {
            d.error(each.span, "`forEach` takes a list, such as [0.1, 0.01], a grid of lists, such as {lr: [0.1, 0.01], depth: [2, 4]}, a list parameter, such as '{{params.rates}}', a list an upstream step outputs, such as '{{steps.split.outputs.params.shards}}', or a list in an enclosing loop's item, such as '{{item.seeds}}'");
        }
    }
    if let (Some(par), None) = (&c.parallelism, &c.for_each) {
        d.error(
            par.span,
            "`parallelism` limits a `forEach` loop; this step has none",
        );
    }
}

fn step(p: &Pipeline, s: &Step, d: &mut Diagnostics) {
    loop_settings(&s.control, d);
    daemon(p, s, d);
    if let Some(when) = &p.control(s).when {
        condition(p, s, when, d);
    }
    if let Some(each) = &p.control(s).for_each {
        match each.value.as_str().and_then(refs::sole_ref) {
            Some(r @ Ref::StepOutput { .. }) => match ref_type(p, s, &r, each.span, d) {
                Some(ParamType::List) | None => {}
                Some(ty) => d.error(
                    each.span,
                    format!("`forEach` needs a list, but `{{{{{r}}}}}` is {ty}"),
                ),
            },
            // The item of a loop around this one: this step's own loop does not count.
            Some(r @ Ref::Item { .. }) if p.loops_around(s).nth(1).is_none() => d.error(
                each.span,
                format!(
                    "`forEach: '{{{{{r}}}}}'` needs a loop around step `{}`, and there is none",
                    s.name
                ),
            ),
            _ => {}
        }
    }
    for dep in &s.depends_on {
        if dep.value == s.local_name() {
            d.error(dep.span, format!("step `{}` depends on itself", s.name));
            continue;
        }
        match p.lookup(s, &dep.value) {
            None if p.is_exit_handler(s) && p.on_exit.iter().any(|e| e.name == dep.value) => {}
            None => d.error(
                dep.span,
                format!(
                    "step `{}` depends on unknown step `{}`{}",
                    s.name,
                    dep.value,
                    step_hint(p, &dep.value)
                ),
            ),
            Some(q) => visible(p, s, q, dep.span, d),
        }
    }
    let tpl = match &s.uses {
        Uses::Inline(t) => {
            template(p, t, Scope::Step(s), d);
            Some(&**t)
        }
        Uses::Component(name) => match p.component(&name.value) {
            Some(c) => Some(&c.template),
            None => {
                let hint = did_you_mean(&name.value, p.components.iter().map(|c| c.name.as_str()))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                d.error(
                    name.span,
                    format!(
                        "step `{}` uses unknown component `{}`{hint}",
                        s.name, name.value
                    ),
                );
                None
            }
        },
        Uses::Group(g) => {
            group_outputs(p, s, g, d);
            None
        }
    };
    let Some(tpl) = tpl else { return };
    let inline = matches!(s.uses, Uses::Inline(_));
    let declared_inputs = !tpl.inputs.params.is_empty() || !tpl.inputs.artifacts.is_empty();
    for b in &s.params {
        let decl = tpl.inputs.param(&b.name);
        if decl.is_none() && (!inline || declared_inputs) {
            d.error(
                b.span,
                format!(
                    "step `{}` has no input parameter `{}`{}",
                    s.name,
                    b.name,
                    io_hint(&tpl.inputs, IoKind::Param, &b.name)
                ),
            );
            continue;
        }
        param_binding(p, s, b, decl.map(|d| d.ty), d);
    }
    for b in &s.artifacts {
        let decl = tpl.inputs.artifact(&b.name);
        if decl.is_none() && (!inline || declared_inputs) {
            d.error(
                b.span,
                format!(
                    "step `{}` has no input artifact `{}`{}",
                    s.name,
                    b.name,
                    io_hint(&tpl.inputs, IoKind::Artifact, &b.name)
                ),
            );
            continue;
        }
        artifact_binding(p, s, b, decl, d);
    }
    for input in &tpl.inputs.params {
        if input.default.is_none()
            && !input.optional
            && !s.params.iter().any(|b| b.name == input.name)
        {
            d.error(
                s.span,
                format!(
                    "step `{}` does not give a value to required input parameter `{}` ({})",
                    s.name, input.name, input.ty
                ),
            );
        }
    }
    for input in &tpl.inputs.artifacts {
        if !s.artifacts.iter().any(|b| b.name == input.name) {
            d.error(
                s.span,
                format!(
                    "step `{}` does not give required input artifact `{}`",
                    s.name, input.name
                ),
            );
        }
    }
}

/// A daemon step runs one container on its run's network, and is stopped rather than finished.
fn daemon(p: &Pipeline, s: &Step, d: &mut Diagnostics) {
    let control = p.control(s);
    let Some(daemon) = &control.daemon else {
        return;
    };
    let tpl = match &s.uses {
        Uses::Inline(t) => Some(&**t),
        Uses::Component(name) => p.component(&name.value).map(|c| &c.template),
        // A group cannot set `daemon` (the parser says so).
        Uses::Group(_) => return,
    };
    if control.for_each.is_some() {
        d.error(
            daemon.span,
            format!(
                "step `{}` cannot both loop (`forEach`) and serve (`daemon`)",
                s.name
            ),
        );
    }
    if s.handler || p.is_exit_handler(s) {
        d.error(daemon.span, format!("exit handler `{}` cannot serve (`daemon`): it runs after the steps that could reach it", s.name));
    }
    let Some(tpl) = tpl else { return };
    if !tpl.outputs.params.is_empty() || !tpl.outputs.artifacts.is_empty() {
        d.error(daemon.span, format!("daemon step `{}` cannot have outputs: it is stopped when the steps after it are done, not finished", s.name));
    }
    match tpl.network.or(p.network) {
        None | Some(NetworkMode::Bridge) => {}
        Some(other) => d.error(
            daemon.span,
            format!("daemon step `{}` serves on its run's network and needs `network: bridge`, not `{other}`", s.name),
        ),
    }
}

fn step_hint(p: &Pipeline, name: &str) -> String {
    if let Some(inner) = p
        .steps
        .iter()
        .find(|s| s.parent.is_some() && s.local_name() == name)
    {
        let group = &inner.name[..inner.name.len() - name.len() - 1];
        return format!(" (`{name}` is a step of group `{group}`, seen only inside it: bind it to an output of the group under `outputs` and read that)");
    }
    did_you_mean(name, p.steps.iter().map(|s| s.local_name()))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn io_hint(io: &Io, kind: IoKind, name: &str) -> String {
    let names: Vec<&str> = match kind {
        IoKind::Param => io.params.iter().map(|p| p.name.as_str()).collect(),
        IoKind::Artifact => io.artifacts.iter().map(|a| a.name.as_str()).collect(),
    };
    match did_you_mean(name, names.iter().copied()) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None if names.is_empty() => format!(": it declares no input {}", kind.plural()),
        None => format!(": it declares {}", names.join(", ")),
    }
}

/// The type a reference yields when used as a parameter value, reporting a dangling one.
fn ref_type(p: &Pipeline, s: &Step, r: &Ref, span: Span, d: &mut Diagnostics) -> Option<ParamType> {
    match r {
        Ref::Param(name) => match p.param(name) {
            Some(decl) => Some(decl.ty),
            None => {
                let hint = did_you_mean(name, p.params.iter().map(|p| p.name.as_str()))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                d.error(
                    span,
                    format!("unknown pipeline parameter `{name}` in `{{{{{r}}}}}`{hint}"),
                );
                None
            }
        },
        Ref::StepOutput { step, kind, name } => {
            step_output(p, s, step, *kind, name, span, d).map(|o| o.ty)
        }
        Ref::RunArtifact(_) => {
            d.error(span, format!("`{{{{{r}}}}}` is an artifact, not a value: bind it under the step's `artifacts`"));
            None
        }
        Ref::StepIp(step) => {
            if step == s.local_name() {
                d.error(
                    span,
                    format!(
                        "step `{}` refers to its own address; in its container it is `hostname -i`",
                        s.name
                    ),
                );
                return None;
            }
            match referenced(p, s, step, span, d) {
                Some(daemon) if p.daemon(daemon).is_none() => d.error(
                    span,
                    format!("`{{{{{r}}}}}`: step `{step}` does not serve, and only a step with `daemon: true` has an address others reach while it runs"),
                ),
                _ => {}
            }
            Some(ParamType::String)
        }
        Ref::Item { of, .. } => {
            let mut loops = p.loops_around(s);
            let found = match of {
                None => loops.next().is_some(),
                Some(l) => loops.any(|x| x.local_name() == l),
            };
            if !found {
                let what = match of {
                    None => "a step with `forEach` or in a group with one".to_string(),
                    Some(l) => {
                        format!("the steps of a loop named `{l}` (a step or group with `forEach`)")
                    }
                };
                d.error(span, format!("`{{{{{r}}}}}` is defined only in {what}"));
            }
            None
        }
        Ref::Context("group.status") => {
            if !s.handler {
                d.error(span, format!("`{{{{{r}}}}}` is defined only in a group's exit handlers (`onExit` of a group)"));
            }
            Some(ParamType::String)
        }
        Ref::Context("task.attempt") => Some(ParamType::Int),
        Ref::Context(_) => Some(ParamType::String),
        Ref::Input(..) | Ref::Output(..) => {
            d.error(span, format!("`{{{{{r}}}}}` names the step's own inputs or outputs; a step's `params` and `artifacts` take pipeline parameters, upstream outputs or literals"));
            None
        }
    }
}

/// A step's `when`: it must parse, and name pipeline parameters or other steps' output
/// parameters (artifacts have no value to compare).
fn condition(p: &Pipeline, s: &Step, when: &Spanned<String>, d: &mut Diagnostics) {
    let expr = match super::cond::parse(&when.value) {
        Ok(e) => e,
        Err(e) => {
            d.error(
                when.span,
                format!("invalid condition `{}`: {e}", when.value),
            );
            return;
        }
    };
    for r in super::cond::refs(&expr) {
        match r {
            Ref::StepOutput {
                kind: IoKind::Artifact,
                ..
            } => d.error(
                when.span,
                format!("a condition can compare output parameters, not artifacts: `{{{{{r}}}}}`"),
            ),
            Ref::Input(..) | Ref::Output(..) => d.error(
                when.span,
                format!("a condition is decided before the step runs, from pipeline parameters and upstream outputs; `{{{{{r}}}}}` is the step's own"),
            ),
            Ref::StepIp(_) => d.error(
                when.span,
                format!("a condition compares parameters; `{{{{{r}}}}}` is an address"),
            ),
            _ => {
                ref_type(p, s, r, when.span, d);
            }
        }
    }
}

/// The step `step` that step `s` names in a reference, which must exist and be one `s` sees.
fn referenced<'a>(
    p: &'a Pipeline,
    s: &Step,
    step: &str,
    span: Span,
    d: &mut Diagnostics,
) -> Option<&'a Step> {
    let Some(q) = p.lookup(s, step) else {
        d.error(
            span,
            format!("reference to unknown step `{step}`{}", step_hint(p, step)),
        );
        return None;
    };
    visible(p, s, q, span, d);
    p.step(q)
}

/// Checks that `{{steps.STEP.outputs.KIND.NAME}}` names a real output of a step `s` can see.
#[allow(clippy::too_many_arguments)]
fn step_output<'a>(
    p: &'a Pipeline,
    s: &Step,
    step: &str,
    kind: IoKind,
    name: &str,
    span: Span,
    d: &mut Diagnostics,
) -> Option<Output<'a>> {
    if step == s.local_name() {
        d.error(span, format!("step `{}` refers to its own output `{name}`; use `{{{{outputs.{}.{name}}}}}` to write it", s.name, kind.plural()));
        return None;
    }
    let producer = referenced(p, s, step, span, d)?;
    match output_of(p, producer, kind, name) {
        Ok(o) => Some(o),
        Err(names) => {
            let have = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            d.error(
                span,
                format!(
                    "step `{step}` has no output {} `{name}` (it has: {have})",
                    &kind.plural()[..kind.plural().len() - 1]
                ),
            );
            None
        }
    }
}

/// Checks every `{{…}}` in what a template runs.
fn template(p: &Pipeline, t: &Template, scope: Scope, d: &mut Diagnostics) {
    let image = &t.image.value;
    if image.is_empty() && t.image.span != Span::default() {
        d.error(
            t.image.span,
            "`image` is empty: name an image such as busybox or 127.0.0.1:5000/ml/sklearn:1",
        );
    } else if image.chars().any(char::is_whitespace) || image.contains("{{") {
        d.error(t.image.span, format!("invalid image reference `{image}`"));
    }
    if let (Some(script), Some(args)) = (&t.script, &t.args) {
        let at = args.first().map(|a| a.span).unwrap_or(script.span);
        d.error(
            at,
            "`script` and `args` cannot both be set: the script's path is the command's argument",
        );
    }
    for decl in t.inputs.params.iter().chain(&t.outputs.params) {
        check_name(&decl.name, "parameter", decl.span, d);
    }
    for decl in t.inputs.artifacts.iter().chain(&t.outputs.artifacts) {
        check_name(&decl.name, "artifact", decl.span, d);
    }
    for s in t.strings() {
        let pieces = match refs::parse(&s.value) {
            Ok(p) => p,
            Err(e) => {
                d.error(s.span, e);
                continue;
            }
        };
        for piece in pieces {
            if let refs::Piece::Ref(r) = piece {
                template_ref(p, t, scope, &r, s.span, d);
            }
        }
    }
    for (name, v) in &t.env {
        if name.is_empty() || name.contains('=') {
            d.error(
                v.span,
                format!("invalid environment variable name `{name}`"),
            );
        }
    }
}

fn template_ref(
    p: &Pipeline,
    t: &Template,
    scope: Scope,
    r: &Ref,
    span: Span,
    d: &mut Diagnostics,
) {
    let bound = |kind: IoKind, name: &str| match scope {
        Scope::Step(s) => match kind {
            IoKind::Param => s.params.iter().any(|b| b.name == name),
            IoKind::Artifact => s.artifacts.iter().any(|b| b.name == name),
        },
        Scope::Component => false,
    };
    match r {
        Ref::Input(kind, name) => {
            let declared = match kind {
                IoKind::Param => t.inputs.param(name).is_some(),
                IoKind::Artifact => t.inputs.artifact(name).is_some(),
            };
            if !declared && !bound(*kind, name) {
                d.error(span, format!("`{{{{{r}}}}}` names an input that is not declared{}", io_hint(&t.inputs, *kind, name)));
            }
        }
        Ref::Output(kind, name) => {
            let declared = match kind {
                IoKind::Param => t.outputs.param(name).is_some(),
                IoKind::Artifact => t.outputs.artifact(name).is_some(),
            };
            if !declared {
                d.error(span, format!("`{{{{{r}}}}}` names an output that is not declared under `outputs.{}`", kind.plural()));
            }
        }
        Ref::RunArtifact(name) => match scope {
            Scope::Component => d.error(
                span,
                format!("a component cannot refer to `{{{{{r}}}}}` directly: declare an input artifact and bind it in the step"),
            ),
            Scope::Step(_) => {
                run_artifact(p, name, span, d);
            }
        },
        Ref::Param(_) | Ref::StepOutput { .. } | Ref::StepIp(_) => match scope {
            Scope::Component => d.error(
                span,
                format!("a component cannot refer to `{{{{{r}}}}}` directly: declare an input and bind it in the step"),
            ),
            Scope::Step(s) => {
                ref_type(p, s, r, span, d);
            }
        },
        Ref::Context("group.status") => {
            if let Scope::Step(s) = scope {
                ref_type(p, s, r, span, d);
            }
        }
        Ref::Context(_) => {}
        Ref::Item { .. } => match scope {
            Scope::Step(s) => {
                ref_type(p, s, r, span, d);
            }
            // A component's item comes from the step that uses it in a loop.
            Scope::Component => {}
        },
    }
}

/// The steps a step waits for (qualified names): those it names in `dependsOn` and those whose
/// outputs it uses. A group waits for what its steps wait for outside it.
pub fn dependencies(p: &Pipeline, s: &Step) -> Vec<String> {
    let mut names: BTreeSet<String> = s.depends_on.iter().map(|d| d.value.clone()).collect();
    let mut add = |text: &str| {
        for r in refs::refs_in(text) {
            if let Ref::StepOutput { step, .. } | Ref::StepIp(step) = r {
                names.insert(step);
            }
        }
    };
    for b in s.params.iter().chain(&s.artifacts) {
        if let Value::String(text) = &b.value {
            add(text);
        }
    }
    if let Uses::Inline(t) = &s.uses {
        for text in t.strings() {
            add(&text.value);
        }
    }
    let control = p.control(s);
    if let Some(each) = &control.for_each {
        if let Some(Ref::StepOutput { step, .. }) = each.value.as_str().and_then(refs::sole_ref) {
            names.insert(step);
        }
    }
    if let Some(when) = &control.when {
        if let Ok(e) = super::cond::parse(&when.value) {
            for r in super::cond::refs(&e) {
                if let Ref::StepOutput { step, .. } = r {
                    names.insert(step.clone());
                }
            }
        }
    }
    names.remove(s.local_name());
    let mut deps: BTreeSet<String> = names
        .iter()
        .filter_map(|n| p.lookup(s, n))
        .map(str::to_string)
        .collect();
    if let Some(g) = s.group() {
        let inside = format!("{}.", s.name);
        for &m in g.steps.iter().chain(&g.on_exit) {
            deps.extend(
                dependencies(p, &p.steps[m])
                    .into_iter()
                    .filter(|d| !d.starts_with(&inside)),
            );
        }
    }
    // A step cannot wait for a group it is in (validation says so).
    deps.retain(|d| *d != s.name && !p.step_index.get(d).is_some_and(|&g| p.is_within(s, g)));
    deps.into_iter().collect()
}

fn cycles(p: &Pipeline, d: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let index: HashMap<&str, usize> = p
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = p
        .steps
        .iter()
        .map(|s| {
            dependencies(p, s)
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut mark = vec![Mark::New; p.steps.len()];
    for start in 0..p.steps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` holds the open steps.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Open;
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::Open;
                        path.push((dep, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|(n, _)| p.steps[*n].name.as_str())
                            .collect();
                        names.reverse();
                        names.insert(0, &p.steps[dep].name);
                        let s = &p.steps[dep];
                        d.error(s.span, format!("dependency cycle: {}", names.join(" → ")));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                path.pop();
            }
        }
    }
}
