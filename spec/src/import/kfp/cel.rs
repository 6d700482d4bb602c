//! The CEL subset kfp writes for `dsl.If`/`Elif`/`Else` (`triggerPolicy.condition`), as a sluice
//! condition: `inputs.parameter_values['NAME']` becomes what that input is bound to; `int(…)`,
//! `double(…)` and `string(…)` conversions are dropped (sluice compares as numbers when both
//! sides read as numbers); `==`, `!=`, `<`, `<=`, `>`, `>=`, `!`, `&&`, `||`, parentheses,
//! quoted strings, numbers and booleans are kept. Anything else is an error at its place.

use crate::diag::{Diagnostics, Span};
use serde_json::Value;
use std::collections::HashMap;

pub(super) fn translate(
    src: &str,
    span: Span,
    bound: &HashMap<&str, &Value>,
    d: &mut Diagnostics,
) -> Option<String> {
    match convert(src, bound) {
        Ok(s) => Some(s),
        Err(e) => {
            d.error(span, format!("condition `{src}`: {e}"));
            None
        }
    }
}

fn convert(src: &str, bound: &HashMap<&str, &Value>) -> Result<String, String> {
    const INPUT: &str = "inputs.parameter_values[";
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    // Open parentheses: true for a conversion's, which is dropped with its closing one.
    let mut parens: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let rest = &src[i..];
        if c.is_whitespace() {
            out.push(' ');
            i += 1;
        } else if let Some(after) = rest.strip_prefix(INPUT) {
            let q = after
                .chars()
                .next()
                .filter(|q| *q == '\'' || *q == '"')
                .ok_or("expected a quoted input name after `inputs.parameter_values[`")?;
            let end = after[1..].find(q).ok_or("an input name is not closed")?;
            let name = &after[1..1 + end];
            let tail = &after[1 + end + 1..];
            if !tail.starts_with(']') {
                return Err(format!("expected `]` after input `{name}`"));
            }
            let v = bound
                .get(name)
                .ok_or_else(|| format!("it reads input `{name}`, which the task is not given"))?;
            out.push_str(&operand(v)?);
            i += INPUT.len() + 1 + end + 1 + 1;
        } else if let Some(f) = ["int(", "double(", "string(", "bool("]
            .iter()
            .find(|f| rest.starts_with(**f))
        {
            parens.push(true);
            i += f.len();
        } else if c == '\'' || c == '"' {
            let end = rest[1..].find(c).ok_or("a string is not closed")?;
            out.push_str(&quote(&rest[1..1 + end])?);
            i += end + 2;
        } else if c == '(' {
            parens.push(false);
            out.push(c);
            i += 1;
        } else if c == ')' {
            if !parens.pop().ok_or("a `)` closes nothing")? {
                out.push(c);
            }
            i += 1;
        } else if "!=<>&|".contains(c) {
            out.push(c);
            i += 1;
        } else if c.is_ascii_digit() || c == '-' || c == '.' {
            let len = rest
                .find(|c: char| {
                    !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E')
                })
                .unwrap_or(rest.len());
            out.push_str(&rest[..len]);
            i += len;
        } else if rest.starts_with("true") || rest.starts_with("false") {
            let w = if rest.starts_with("true") {
                "true"
            } else {
                "false"
            };
            out.push_str(w);
            i += w.len();
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            return Err(format!("`{}` is not in the CEL subset sluice runs (inputs.parameter_values, comparisons, !, &&, ||, int(), double())", if word.is_empty() { c.to_string() } else { word }));
        }
    }
    Ok(out)
}

/// A bound value as a condition operand: a reference stays one; a literal is written out.
fn operand(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::String(s)
            if s.starts_with("{{") && s.ends_with("}}") && s.matches("{{").count() == 1 =>
        {
            s.clone()
        }
        Value::String(s) => quote(s)?,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(format!(
                "it compares `{other}`, which is not a single value"
            ))
        }
    })
}

fn quote(s: &str) -> Result<String, String> {
    if !s.contains('"') {
        Ok(format!("\"{s}\""))
    } else if !s.contains('\'') {
        Ok(format!("'{s}'"))
    } else {
        Err(format!("the string `{s}` holds both kinds of quotes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfp_conditions_become_sluice_conditions() {
        let r = Value::String("{{steps.flip.outputs.params.Output}}".into());
        let n = Value::from(3);
        let bound: HashMap<&str, &Value> = [
            ("pipelinechannel--flip-Output", &r),
            ("pipelinechannel--n", &n),
        ]
        .into();
        let cases = [
            ("inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads'", "{{steps.flip.outputs.params.Output}} == \"heads\""),
            ("!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') && int(inputs.parameter_values['pipelinechannel--n']) > 2", "!({{steps.flip.outputs.params.Output}} == \"heads\") && 3 > 2"),
        ];
        for (cel, want) in cases {
            let got = convert(cel, &bound).unwrap();
            assert_eq!(got, want);
            crate::cond::parse(&got).unwrap();
        }
        assert!(convert("size(inputs.parameter_values['x']) > 1", &bound)
            .unwrap_err()
            .contains("`size`"));
        assert!(convert("inputs.parameter_values['nope'] == 1", &bound)
            .unwrap_err()
            .contains("`nope`"));
    }
}
