//! Declarations of parameters and artifacts: a pipeline's, a template's inputs and outputs.

use super::*;

/// Parameter declarations. Each is `{type, default, description}`, or a bare literal that is
/// the default and gives the type; for outputs, a bare string is the type's name.
pub(super) fn param_decls(
    node: &Node,
    what: &str,
    bare_is_type: bool,
    d: &mut Diagnostics,
) -> Vec<ParamDecl> {
    let mut out = Vec::new();
    for (k, v) in entries(node, what, d) {
        let decl = |ty, default, description| ParamDecl {
            name: k.name.clone(),
            ty,
            default,
            description,
            optional: false,
            span: k.span,
        };
        match &v.kind {
            Kind::Map(_) => {
                let Some(f) = Fields::new(
                    v,
                    &format!("parameter `{}`", k.name),
                    &[&["type", "default", "description"]],
                    d,
                ) else {
                    continue;
                };
                let default = f
                    .get("default")
                    .map(|n| n.to_json())
                    .filter(|v| !v.is_null());
                let ty = match f.string("type", d) {
                    Some(t) => match ParamType::from_name(&t.value) {
                        Some(ty) => ty,
                        None => {
                            d.error(
                                t.span,
                                format!(
                                    "unknown parameter type `{}`: expected one of {}",
                                    t.value,
                                    ParamType::NAMES.join(", ")
                                ),
                            );
                            continue;
                        }
                    },
                    None => match default.as_ref().and_then(ParamType::of) {
                        Some(ty) => ty,
                        None => {
                            d.error(k.span, format!("parameter `{}` needs a `type` (one of {}) or a default to take it from", k.name, ParamType::NAMES.join(", ")));
                            continue;
                        }
                    },
                };
                let default = match default.map(|v| ty.check(&v)) {
                    Some(Err(e)) => {
                        let at = f.get("default").map(|n| n.span).unwrap_or(k.span);
                        d.error(
                            at,
                            format!(
                                "default of parameter `{}` does not match its type {ty}: {e}",
                                k.name
                            ),
                        );
                        None
                    }
                    Some(Ok(v)) => Some(v),
                    None => None,
                };
                out.push(decl(ty, default, opt_string(&f, "description", d)));
            }
            Kind::Null => {
                d.error(
                    v.span,
                    format!("parameter `{}` needs a type or a default", k.name),
                );
            }
            Kind::Str { value, .. } if bare_is_type => match ParamType::from_name(value) {
                Some(ty) => out.push(decl(ty, None, None)),
                None => d.error(
                    v.span,
                    format!(
                        "unknown parameter type `{value}`: expected one of {}",
                        ParamType::NAMES.join(", ")
                    ),
                ),
            },
            _ => {
                let value = v.to_json();
                match ParamType::of(&value) {
                    Some(ty) => out.push(decl(ty, Some(value), None)),
                    None => d.error(
                        v.span,
                        format!("parameter `{}` needs a type or a default", k.name),
                    ),
                }
            }
        }
    }
    out
}

pub(super) fn artifact_decls(node: &Node, what: &str, d: &mut Diagnostics) -> Vec<ArtifactDecl> {
    let mut out = Vec::new();
    for (k, v) in entries(node, what, d) {
        let (kind, description) = match &v.kind {
            Kind::Null => (None, None),
            Kind::Str { value, .. } => (Some(value.clone()), None),
            Kind::Map(_) => {
                let Some(f) = Fields::new(
                    v,
                    &format!("artifact `{}`", k.name),
                    &[&["type", "description"]],
                    d,
                ) else {
                    continue;
                };
                (opt_string(&f, "type", d), opt_string(&f, "description", d))
            }
            _ => {
                d.error(
                    v.span,
                    format!(
                        "artifact `{}` must be a mapping such as {{type: model}}, found {}",
                        k.name,
                        v.describe()
                    ),
                );
                continue;
            }
        };
        out.push(ArtifactDecl {
            name: k.name.clone(),
            kind,
            description,
            span: k.span,
        });
    }
    out
}

pub(super) fn io(node: &Node, what: &str, outputs: bool, d: &mut Diagnostics) -> Io {
    let Some(f) = Fields::new(node, what, &[&["params", "artifacts"]], d) else {
        return Io::default();
    };
    Io {
        params: f
            .get("params")
            .map(|n| param_decls(n, "params", outputs, d))
            .unwrap_or_default(),
        artifacts: f
            .get("artifacts")
            .map(|n| artifact_decls(n, "artifacts", d))
            .unwrap_or_default(),
    }
}
