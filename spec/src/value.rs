//! Parameter types and values: checking a value against a declared type, and reading one from text.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A parameter value; JSON is the one representation used in files, the API and the database.
pub type Value = serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    List,
    Object,
}

impl ParamType {
    pub const NAMES: [&'static str; 6] = ["string", "int", "float", "bool", "list", "object"];

    pub fn from_name(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" | "str" => ParamType::String,
            "int" | "integer" => ParamType::Int,
            "float" | "double" | "number" => ParamType::Float,
            "bool" | "boolean" => ParamType::Bool,
            "list" | "array" => ParamType::List,
            "object" | "dict" | "struct" => ParamType::Object,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::List => "list",
            ParamType::Object => "object",
        }
    }

    /// The type of a literal value.
    pub fn of(v: &Value) -> Option<ParamType> {
        Some(match v {
            Value::String(_) => ParamType::String,
            Value::Number(n) if n.is_i64() || n.is_u64() => ParamType::Int,
            Value::Number(_) => ParamType::Float,
            Value::Bool(_) => ParamType::Bool,
            Value::Array(_) => ParamType::List,
            Value::Object(_) => ParamType::Object,
            Value::Null => return None,
        })
    }

    /// Whether a value of type `from` may feed an input of this type: the same type, an int
    /// where a float is expected, or anything where a string is expected (it is rendered as text).
    pub fn accepts(self, from: ParamType) -> bool {
        self == from
            || self == ParamType::String
            || (self == ParamType::Float && from == ParamType::Int)
    }

    /// Checks a value against this type, converting where the conversion loses nothing.
    pub fn check(self, v: &Value) -> Result<Value, String> {
        match (self, v) {
            (ParamType::String, Value::String(_)) => Ok(v.clone()),
            (ParamType::String, Value::Number(_) | Value::Bool(_)) => Ok(Value::String(render(v))),
            (ParamType::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            (ParamType::Int, Value::String(s)) => self.parse(s),
            (ParamType::Float, Value::Number(_)) => Ok(v.clone()),
            (ParamType::Float, Value::String(s)) => self.parse(s),
            (ParamType::Bool, Value::Bool(_)) => Ok(v.clone()),
            (ParamType::Bool, Value::String(s)) => self.parse(s),
            (ParamType::List, Value::Array(_)) => Ok(v.clone()),
            (ParamType::Object, Value::Object(_)) => Ok(v.clone()),
            (ParamType::List | ParamType::Object, Value::String(s)) => self.parse(s),
            _ => Err(format!(
                "expected {}, found {}",
                self.article(),
                describe(v)
            )),
        }
    }

    /// Reads a value of this type from text, as given on a command line or written by a step.
    pub fn parse(self, s: &str) -> Result<Value, String> {
        let bad = || format!("expected {}, found `{}`", self.article(), s);
        match self {
            ParamType::String => Ok(Value::String(s.to_string())),
            ParamType::Int => s.trim().parse::<i64>().map(Value::from).map_err(|_| bad()),
            ParamType::Float => {
                let f = s.trim().parse::<f64>().map_err(|_| bad())?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(bad)
            }
            ParamType::Bool => match s.trim() {
                "true" | "True" | "TRUE" | "1" => Ok(Value::Bool(true)),
                "false" | "False" | "FALSE" | "0" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            ParamType::List => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Array(_)) => Ok(v),
                _ => Err(format!("expected a JSON list such as [1, 2], found `{s}`")),
            },
            ParamType::Object => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(v),
                _ => Err(format!(
                    "expected a JSON object such as {{\"k\": 1}}, found `{s}`"
                )),
            },
        }
    }

    fn article(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Int => "an int",
            ParamType::Float => "a float",
            ParamType::Bool => "a bool",
            ParamType::List => "a list",
            ParamType::Object => "an object",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => format!("the string `{s}`"),
        other => format!("`{other}`"),
    }
}

/// A value as it appears when substituted into a command: strings bare, everything else as JSON.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_table() {
        let cases: &[(ParamType, Value, Result<Value, ()>)] = &[
            (ParamType::Int, json!(3), Ok(json!(3))),
            (ParamType::Int, json!("3"), Ok(json!(3))),
            (ParamType::Int, json!(3.5), Err(())),
            (ParamType::Int, json!("x"), Err(())),
            (ParamType::Float, json!(3), Ok(json!(3))),
            (ParamType::Float, json!("0.25"), Ok(json!(0.25))),
            (ParamType::Bool, json!("true"), Ok(json!(true))),
            (ParamType::Bool, json!(1), Err(())),
            (ParamType::String, json!(7), Ok(json!("7"))),
            (ParamType::List, json!("[1,2]"), Ok(json!([1, 2]))),
            (ParamType::List, json!({"a": 1}), Err(())),
            (ParamType::Object, json!({"a": 1}), Ok(json!({"a": 1}))),
            (ParamType::Object, Value::Null, Err(())),
        ];
        for (ty, input, want) in cases {
            let got = ty.check(input).map_err(|_| ());
            assert_eq!(&got, want, "{ty} <- {input}");
        }
    }

    #[test]
    fn accepts_widening_only() {
        assert!(ParamType::Float.accepts(ParamType::Int));
        assert!(!ParamType::Int.accepts(ParamType::Float));
        assert!(ParamType::String.accepts(ParamType::List));
        assert!(!ParamType::Bool.accepts(ParamType::String));
    }

    #[test]
    fn render_strings_bare() {
        assert_eq!(render(&json!("a b")), "a b");
        assert_eq!(render(&json!([1, "x"])), "[1,\"x\"]");
    }
}
