//! Kubeflow's list filters (`filter.proto` as JSON: `{"predicates": [{"key", "operation",
//! "string_value" | "int_value" | "long_value" | "timestamp_value" | "…_values"}]}`), in either
//! field spelling, with operations by name or number. Run filters become conditions the store
//! evaluates; the other lists (a few rows each) are filtered here. A key or operation sluice
//! cannot evaluate is a 400 naming the predicate.

use super::bad;
use crate::api::error::ApiErr;
use crate::store::{Cmp, Operand, Predicate, RunField};
use serde_json::Value;
use sluice_sdk::api::RunState;

/// Longest filter taken.
const MAX_FILTER: usize = 16 * 1024;
/// Most predicates in one filter.
const MAX_PREDICATES: usize = 32;

/// A predicate's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    /// A time, in milliseconds.
    Time(i64),
    Strs(Vec<String>),
    Ints(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    pub key: String,
    pub op: Cmp,
    pub val: Val,
    /// How it was written, for errors.
    pub text: String,
}

fn op(v: &Value) -> Option<Cmp> {
    let by_number = |n: i64| match n {
        1 => Some(Cmp::Eq),
        2 => Some(Cmp::Ne),
        3 => Some(Cmp::Gt),
        5 => Some(Cmp::Ge),
        6 => Some(Cmp::Lt),
        7 => Some(Cmp::Le),
        8 => Some(Cmp::In),
        9 => Some(Cmp::Contains),
        _ => None,
    };
    match v {
        Value::Number(n) => n.as_i64().and_then(by_number),
        Value::String(s) => match s.as_str() {
            "EQUALS" => Some(Cmp::Eq),
            "NOT_EQUALS" => Some(Cmp::Ne),
            "GREATER_THAN" => Some(Cmp::Gt),
            "GREATER_THAN_EQUALS" => Some(Cmp::Ge),
            "LESS_THAN" => Some(Cmp::Lt),
            "LESS_THAN_EQUALS" => Some(Cmp::Le),
            "IN" => Some(Cmp::In),
            "IS_SUBSTRING" => Some(Cmp::Contains),
            s => s.parse().ok().and_then(by_number),
        },
        _ => None,
    }
}

/// A field under either of protobuf JSON's spellings (`string_value`, `stringValue`).
fn field<'a>(p: &'a Value, snake: &str) -> Option<&'a Value> {
    p.get(snake).or_else(|| {
        let mut camel = String::new();
        let mut up = false;
        for c in snake.chars() {
            if c == '_' {
                up = true;
            } else if up {
                camel.push(c.to_ascii_uppercase());
                up = false;
            } else {
                camel.push(c);
            }
        }
        p.get(camel)
    })
}

fn val(p: &Value) -> Option<Val> {
    if let Some(s) = field(p, "string_value").and_then(Value::as_str) {
        return Some(Val::Str(s.to_string()));
    }
    if let Some(i) = field(p, "int_value").or_else(|| field(p, "long_value")) {
        return super::int64(i).map(Val::Int);
    }
    if let Some(t) = field(p, "timestamp_value").and_then(Value::as_str) {
        return chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| Val::Time(t.timestamp_millis()));
    }
    if let Some(list) = field(p, "string_values") {
        let vs = list.get("values")?.as_array()?;
        return vs
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Val::Strs);
    }
    if let Some(list) = field(p, "int_values").or_else(|| field(p, "long_values")) {
        let vs = list.get("values")?.as_array()?;
        return vs
            .iter()
            .map(super::int64)
            .collect::<Option<Vec<_>>>()
            .map(Val::Ints);
    }
    None
}

/// Parses a filter; an empty one has no predicates.
pub fn parse(filter: Option<&str>) -> Result<Vec<Pred>, ApiErr> {
    let Some(f) = filter.filter(|f| !f.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    if f.len() > MAX_FILTER {
        return Err(bad(format!("the filter is over {MAX_FILTER} bytes")));
    }
    let v: Value = serde_json::from_str(f)
        .map_err(|e| bad(format!("the filter is not JSON of Kubeflow's Filter: {e}")))?;
    let Some(preds) = v.get("predicates").and_then(Value::as_array) else {
        return Err(bad("the filter has no `predicates` list"));
    };
    if preds.len() > MAX_PREDICATES {
        return Err(bad(format!(
            "the filter has over {MAX_PREDICATES} predicates"
        )));
    }
    preds
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text = format!("predicate {} ({p})", i + 1);
            let key = p
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{text} has no `key`")))?;
            let op = p
                .get("operation")
                .and_then(op)
                .ok_or_else(|| bad(format!("{text} has no operation sluice knows")))?;
            let val = val(p).ok_or_else(|| bad(format!("{text} has no value sluice reads")))?;
            Ok(Pred {
                key: key.to_string(),
                op,
                val,
                text,
            })
        })
        .collect()
}

fn unfilterable(p: &Pred, what: &str, keys: &str) -> ApiErr {
    bad(format!(
        "cannot evaluate {}: {what} are filtered by {keys}",
        p.text
    ))
}

/// A run's state under Kubeflow's name, as sluice's states.
fn run_states(kfp: &str) -> Option<Vec<String>> {
    let s: &[RunState] = match kfp {
        "RUNNING" => &[RunState::Running],
        "SUCCEEDED" => &[RunState::Succeeded],
        "FAILED" => &[RunState::Failed],
        "CANCELING" => &[RunState::Cancelling],
        "CANCELED" => &[RunState::Cancelled],
        "PENDING" | "PAUSED" | "SKIPPED" | "RUNTIME_STATE_UNSPECIFIED" => &[],
        _ => return None,
    };
    Some(s.iter().map(|s| s.as_str().to_string()).collect())
}

/// Run filters as the store's conditions.
pub fn for_runs(preds: &[Pred]) -> Result<Vec<Predicate>, ApiErr> {
    const KEYS: &str = "display_name (or name), run_id, state, storage_state, created_at, finished_at, experiment_id, pipeline_version_id, recurring_run_id";
    let mut out = Vec::new();
    for p in preds {
        let no = || unfilterable(p, "runs", KEYS);
        let field = match p.key.as_str() {
            "name" | "display_name" => RunField::Name,
            "run_id" | "id" => RunField::Id,
            "state" => RunField::State,
            "storage_state" => RunField::Archived,
            "created_at" => RunField::CreatedAt,
            "finished_at" => RunField::FinishedAt,
            "experiment_id" => RunField::Experiment,
            "pipeline_version_id" => RunField::PipelineVersion,
            "recurring_run_id" => RunField::Schedule,
            _ => return Err(no()),
        };
        let cmp = p.op;
        let value = match (field, &p.val) {
            (RunField::CreatedAt | RunField::FinishedAt, Val::Time(t)) => Operand::Int(*t),
            // Kubeflow keeps these in seconds.
            (RunField::CreatedAt | RunField::FinishedAt, Val::Int(s)) => {
                Operand::Int(s.saturating_mul(1000))
            }
            (RunField::CreatedAt | RunField::FinishedAt, _) => return Err(no()),
            (_, _) if matches!(p.op, Cmp::Gt | Cmp::Ge | Cmp::Lt | Cmp::Le) => return Err(no()),
            (RunField::Archived, Val::Str(s)) if p.op != Cmp::Contains => match s.as_str() {
                "ARCHIVED" => Operand::Bool(true),
                "AVAILABLE" => Operand::Bool(false),
                _ => return Err(no()),
            },
            (RunField::Archived, _) => return Err(no()),
            (RunField::State, Val::Str(s)) if matches!(p.op, Cmp::Eq | Cmp::Ne) => {
                let states = run_states(s).ok_or_else(no)?;
                out.push(Predicate {
                    field,
                    cmp: Cmp::In,
                    value: Operand::Texts(states.clone()),
                });
                if p.op == Cmp::Ne {
                    // NOT IN: every state but these.
                    out.pop();
                    let rest = RunState::ALL
                        .iter()
                        .map(|s| s.as_str().to_string())
                        .filter(|s| !states.contains(s))
                        .collect();
                    out.push(Predicate {
                        field,
                        cmp: Cmp::In,
                        value: Operand::Texts(rest),
                    });
                }
                continue;
            }
            (RunField::State, Val::Strs(list)) if p.op == Cmp::In => {
                let mut all = Vec::new();
                for s in list {
                    all.extend(run_states(s).ok_or_else(no)?);
                }
                Operand::Texts(all)
            }
            (RunField::State, _) => return Err(no()),
            (_, Val::Str(s)) if p.op != Cmp::In => Operand::Text(s.clone()),
            (_, Val::Strs(list)) if p.op == Cmp::In => Operand::Texts(list.clone()),
            _ => return Err(no()),
        };
        out.push(Predicate { field, cmp, value });
    }
    Ok(out)
}

/// Whether a Kubeflow object (as this API writes it) meets every predicate; `keys` are the
/// fields it may be filtered by (`name` stands for `display_name`).
pub fn matches(obj: &Value, preds: &[Pred], what: &str, keys: &[&str]) -> Result<bool, ApiErr> {
    for p in preds {
        let key = if p.key == "name" {
            "display_name"
        } else {
            p.key.as_str()
        };
        if !keys.contains(&key) {
            return Err(unfilterable(p, what, &keys.join(", ")));
        }
        let have = &obj[key];
        let ok = match (&p.val, p.op) {
            (Val::Str(s), Cmp::Contains) => have
                .as_str()
                .is_some_and(|h| h.to_lowercase().contains(&s.to_lowercase())),
            (Val::Str(s), Cmp::Eq) => have.as_str() == Some(s.as_str()),
            (Val::Str(s), Cmp::Ne) => have.as_str() != Some(s.as_str()),
            (Val::Strs(list), Cmp::In) => {
                have.as_str().is_some_and(|h| list.iter().any(|s| s == h))
            }
            (Val::Time(_) | Val::Int(_), op) => {
                let want = match p.val {
                    Val::Time(t) => t,
                    Val::Int(s) => s.saturating_mul(1000),
                    _ => 0,
                };
                let Some(h) = have
                    .as_str()
                    .and_then(|h| chrono::DateTime::parse_from_rfc3339(h).ok())
                    .map(|t| t.timestamp_millis())
                else {
                    return Err(unfilterable(p, what, &keys.join(", ")));
                };
                match op {
                    Cmp::Eq => h == want,
                    Cmp::Ne => h != want,
                    Cmp::Gt => h > want,
                    Cmp::Ge => h >= want,
                    Cmp::Lt => h < want,
                    Cmp::Le => h <= want,
                    _ => return Err(unfilterable(p, what, &keys.join(", "))),
                }
            }
            _ => return Err(unfilterable(p, what, &keys.join(", "))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_in_both_spellings_and_operations_by_name_or_number() {
        let a = parse(Some(
            r#"{"predicates":[{"key":"display_name","operation":1,"stringValue":"x"}]}"#,
        ))
        .unwrap();
        let b = parse(Some(
            r#"{"predicates":[{"key":"display_name","operation":"EQUALS","string_value":"x"}]}"#,
        ))
        .unwrap();
        assert_eq!(a[0].op, b[0].op);
        assert_eq!(a[0].val, Val::Str("x".into()));
        assert!(parse(None).unwrap().is_empty());
    }

    #[test]
    fn a_predicate_sluice_cannot_evaluate_is_named() {
        let p = parse(Some(
            r#"{"predicates":[{"key":"pod_name","operation":"EQUALS","string_value":"x"}]}"#,
        ))
        .unwrap();
        let e = for_runs(&p).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("pod_name"), "{}", e.message);
        let bad_state = parse(Some(
            r#"{"predicates":[{"key":"state","operation":"EQUALS","string_value":"NAPPING"}]}"#,
        ))
        .unwrap();
        assert!(for_runs(&bad_state)
            .unwrap_err()
            .message
            .contains("NAPPING"));
        assert!(parse(Some("{")).unwrap_err().message.contains("JSON"));
        assert!(parse(Some(
            r#"{"predicates":[{"key":"x","operation":"SOUNDS_LIKE","string_value":"y"}]}"#
        ))
        .is_err());
    }

    #[test]
    fn objects_are_matched_by_their_fields() {
        let obj = serde_json::json!({"display_name": "Nightly", "created_at": "2026-12-01T00:00:00.000Z"});
        let keys = ["display_name", "created_at"];
        let m = |f: &str| matches(&obj, &parse(Some(f)).unwrap(), "things", &keys);
        assert!(m(
            r#"{"predicates":[{"key":"name","operation":"EQUALS","string_value":"Nightly"}]}"#
        )
        .unwrap());
        assert!(!m(
            r#"{"predicates":[{"key":"name","operation":"EQUALS","string_value":"nightly"}]}"#
        )
        .unwrap());
        assert!(m(
            r#"{"predicates":[{"key":"name","operation":"IS_SUBSTRING","string_value":"night"}]}"#
        )
        .unwrap());
        assert!(m(r#"{"predicates":[{"key":"created_at","operation":"GREATER_THAN","timestamp_value":"2026-11-30T00:00:00Z"}]}"#).unwrap());
        assert!(m(
            r#"{"predicates":[{"key":"namespace","operation":"EQUALS","string_value":"x"}]}"#
        )
        .is_err());
    }
}
