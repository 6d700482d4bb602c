//! A step's bindings: each input parameter's value and each input artifact's source.

use super::*;

pub(super) fn param_binding(
    p: &Pipeline,
    s: &Step,
    b: &Binding,
    want: Option<ParamType>,
    d: &mut Diagnostics,
) {
    let Value::String(text) = &b.value else {
        if let Some(ty) = want {
            if let Err(e) = ty.check(&b.value) {
                d.error(
                    b.span,
                    format!(
                        "input parameter `{}` of step `{}` is {ty}: {e}",
                        b.name, s.name
                    ),
                );
            }
        }
        return;
    };
    let pieces = match refs::parse(text) {
        Ok(p) => p,
        Err(e) => return d.error(b.span, e),
    };
    let mut found = Vec::new();
    for piece in &pieces {
        if let refs::Piece::Ref(r) = piece {
            if let Some(ty) = ref_type(p, s, r, b.span, d) {
                found.push((r, ty));
            }
        }
    }
    if let (Some(want), [refs::Piece::Ref(r)]) = (want, pieces.as_slice()) {
        if let Some((_, got)) = found.first() {
            if !want.accepts(*got) {
                d.error(b.span, format!("type mismatch: input parameter `{}` of step `{}` is {want}, but `{{{{{r}}}}}` is {got}", b.name, s.name));
            }
        }
    } else if let (Some(want), true) = (want, found.is_empty()) {
        if let Err(e) = want.check(&b.value) {
            d.error(
                b.span,
                format!(
                    "input parameter `{}` of step `{}` is {want}: {e}",
                    b.name, s.name
                ),
            );
        }
    }
}

pub(super) fn artifact_binding(
    p: &Pipeline,
    s: &Step,
    b: &Binding,
    want: Option<&ArtifactDecl>,
    d: &mut Diagnostics,
) {
    let r = match &b.value {
        Value::String(text) => refs::sole_ref(text),
        _ => None,
    };
    if let Some(Ref::RunArtifact(name)) = &r {
        let Some(have) = run_artifact(p, name, b.span, d) else {
            return;
        };
        if let (Some(want), Some(have)) = (want.and_then(|w| w.kind.as_deref()), &have.kind) {
            if want != have {
                d.error(b.span, format!("type mismatch: input artifact `{}` of step `{}` is a {want}, but the pipeline's input artifact `{name}` is a {have}", b.name, s.name));
            }
        }
        return;
    }
    let Some(Ref::StepOutput {
        step,
        kind: IoKind::Artifact,
        name,
    }) = r
    else {
        d.error(b.span, format!("input artifact `{}` of step `{}` must be exactly one `{{{{steps.STEP.outputs.artifacts.NAME}}}}` or `{{{{artifacts.NAME}}}}` reference", b.name, s.name));
        return;
    };
    let Some(producer) = step_output(p, s, &step, IoKind::Artifact, &name, b.span, d) else {
        return;
    };
    if let (Some(want), Some(have)) = (want.and_then(|w| w.kind.as_deref()), producer.kind) {
        if want != have {
            d.error(b.span, format!("type mismatch: input artifact `{}` of step `{}` is a {want}, but `{step}.{name}` is a {have}", b.name, s.name));
        }
    }
}

/// The pipeline's input artifact `name`, reporting one it does not declare.
pub(super) fn run_artifact<'p>(
    p: &'p Pipeline,
    name: &str,
    span: Span,
    d: &mut Diagnostics,
) -> Option<&'p ArtifactDecl> {
    let found = p.artifacts.iter().find(|a| a.name == name);
    if found.is_none() {
        let names = p.artifacts.iter().map(|a| a.name.as_str());
        let hint = match did_you_mean(name, names.clone()) {
            Some(c) => format!(" (did you mean `{c}`?)"),
            None if p.artifacts.is_empty() => {
                ": it declares none (declare it under the pipeline's `artifacts`)".to_string()
            }
            None => format!(": it declares {}", names.collect::<Vec<_>>().join(", ")),
        };
        d.error(
            span,
            format!("`{{{{artifacts.{name}}}}}` names no input artifact of the pipeline{hint}"),
        );
    }
    found
}
