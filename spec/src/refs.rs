//! `{{…}}` references inside strings: pipeline parameters, a step's inputs and outputs, upstream
//! steps' outputs, and facts about the run.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoKind {
    Param,
    Artifact,
}

impl IoKind {
    pub fn plural(self) -> &'static str {
        match self {
            IoKind::Param => "params",
            IoKind::Artifact => "artifacts",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    /// `{{params.NAME}}`: a pipeline parameter's value.
    Param(String),
    /// `{{artifacts.NAME}}`: a pipeline input artifact, given to the run when it was submitted.
    RunArtifact(String),
    /// `{{inputs.params.NAME}}` (value) or `{{inputs.artifacts.NAME}}` (mounted path).
    Input(IoKind, String),
    /// `{{outputs.params.NAME}}` or `{{outputs.artifacts.NAME}}`: where the step writes it.
    Output(IoKind, String),
    /// `{{steps.STEP.outputs.params.NAME}}` or `{{steps.STEP.outputs.artifacts.NAME}}`.
    StepOutput {
        step: String,
        kind: IoKind,
        name: String,
    },
    /// `{{steps.STEP.ip}}`: the address a daemon step serves on (its run's network).
    StepIp(String),
    /// `{{run.id}}`, `{{run.name}}`, `{{run.status}}`, `{{group.status}}`, `{{task.name}}`,
    /// `{{task.attempt}}`.
    Context(&'static str),
    /// `{{item}}` or `{{item.KEY}}`: the item of the innermost loop around the step;
    /// `{{loops.NAME.item}}` or `{{loops.NAME.item.KEY}}`: that of the loop (step or group) NAME.
    Item {
        of: Option<String>,
        key: Option<String>,
    },
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Param(n) => write!(f, "params.{n}"),
            Ref::RunArtifact(n) => write!(f, "artifacts.{n}"),
            Ref::Input(k, n) => write!(f, "inputs.{}.{n}", k.plural()),
            Ref::Output(k, n) => write!(f, "outputs.{}.{n}", k.plural()),
            Ref::StepOutput { step, kind, name } => {
                write!(f, "steps.{step}.outputs.{}.{name}", kind.plural())
            }
            Ref::StepIp(step) => write!(f, "steps.{step}.ip"),
            Ref::Context(c) => f.write_str(c),
            Ref::Item { of, key } => {
                if let Some(l) = of {
                    write!(f, "loops.{l}.")?;
                }
                f.write_str("item")?;
                match key {
                    Some(k) => write!(f, ".{k}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ref(Ref),
}

/// Splits a string into literal text and references. The error names the bad reference.
pub fn parse(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in `{s}`"))?;
        out.push(Piece::Ref(parse_ref(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// The references a string makes, ignoring malformed ones (validation reports those).
pub fn refs_in(s: &str) -> Vec<Ref> {
    parse(s)
        .map(|pieces| {
            pieces
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Ref(r) => Some(r),
                    Piece::Text(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The single reference a string consists of, if it is exactly one `{{…}}` and nothing else.
pub fn sole_ref(s: &str) -> Option<Ref> {
    match parse(s).ok()?.as_slice() {
        [Piece::Ref(r)] => Some(r.clone()),
        _ => None,
    }
}

pub fn parse_ref(expr: &str) -> Result<Ref, String> {
    let parts: Vec<&str> = expr.split('.').collect();
    let kind = |k: &str| match k {
        "params" | "parameters" => Ok(IoKind::Param),
        "artifacts" => Ok(IoKind::Artifact),
        _ => Err(format!(
            "unknown reference `{{{{{expr}}}}}`: expected `params` or `artifacts` after `{}`",
            parts[..parts.len().min(3) - 1].join(".")
        )),
    };
    let ok_name = |n: &str| !n.is_empty() && super::validate::is_name(n);
    let r = match parts.as_slice() {
        ["params", n] if ok_name(n) => Ref::Param(n.to_string()),
        ["artifacts", n] if ok_name(n) => Ref::RunArtifact(n.to_string()),
        ["inputs", k, n] | ["inputs", k, n, "path"] if ok_name(n) => Ref::Input(kind(k)?, n.to_string()),
        ["outputs", k, n] | ["outputs", k, n, "path"] if ok_name(n) => Ref::Output(kind(k)?, n.to_string()),
        ["steps", step, "outputs", k, n] if ok_name(step) && ok_name(n) => Ref::StepOutput {
            step: step.to_string(),
            kind: kind(k)?,
            name: n.to_string(),
        },
        ["steps", step, "ip"] if ok_name(step) => Ref::StepIp(step.to_string()),
        ["run", "id"] => Ref::Context("run.id"),
        ["run", "name"] => Ref::Context("run.name"),
        ["run", "status"] => Ref::Context("run.status"),
        ["task", "name"] => Ref::Context("task.name"),
        ["task", "attempt"] => Ref::Context("task.attempt"),
        ["group", "status"] => Ref::Context("group.status"),
        ["item"] => Ref::Item { of: None, key: None },
        ["item", key] => Ref::Item {
            of: None,
            key: Some(key.to_string()),
        },
        ["loops", l, "item"] if ok_name(l) => Ref::Item {
            of: Some(l.to_string()),
            key: None,
        },
        ["loops", l, "item", key] if ok_name(l) => Ref::Item {
            of: Some(l.to_string()),
            key: Some(key.to_string()),
        },
        _ => {
            return Err(format!(
                "unknown reference `{{{{{expr}}}}}`: expected params.NAME, artifacts.NAME, inputs.params.NAME, \
                 inputs.artifacts.NAME, outputs.params.NAME, outputs.artifacts.NAME, \
                 steps.STEP.outputs.params.NAME, steps.STEP.outputs.artifacts.NAME, steps.STEP.ip, run.id, run.name, run.status, \
                 group.status, task.name, task.attempt, item, item.KEY, loops.LOOP.item or loops.LOOP.item.KEY"
            ))
        }
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = parse("--lr={{ params.lr }} in {{inputs.artifacts.data.path}}").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("--lr=".into()),
                Piece::Ref(Ref::Param("lr".into())),
                Piece::Text(" in ".into()),
                Piece::Ref(Ref::Input(IoKind::Artifact, "data".into())),
            ]
        );
        assert_eq!(
            sole_ref("{{steps.train.outputs.params.acc}}"),
            Some(Ref::StepOutput {
                step: "train".into(),
                kind: IoKind::Param,
                name: "acc".into()
            })
        );
        assert_eq!(sole_ref("x{{params.a}}"), None);
        assert_eq!(
            sole_ref("{{ artifacts.data }}"),
            Some(Ref::RunArtifact("data".into()))
        );
        assert_eq!(sole_ref("{{run.id}}"), Some(Ref::Context("run.id")));
        assert_eq!(
            sole_ref("{{ steps.serve.ip }}"),
            Some(Ref::StepIp("serve".into()))
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("{{params.a")
            .unwrap_err()
            .contains("without a closing"));
        assert!(parse("{{inputs.models.a}}")
            .unwrap_err()
            .contains("expected `params` or `artifacts`"));
        assert!(parse("{{foo}}")
            .unwrap_err()
            .contains("unknown reference `{{foo}}`"));
        assert!(parse("{{params.}}").is_err());
    }
}
