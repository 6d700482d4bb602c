//! The launch contract of a step imported from a Kubeflow pipeline (see `import::kfp`): its
//! container's command and arguments as the KFP IR writes them (with KFP's placeholders) and its
//! inputs and outputs as the IR types them. The engine fills in the input values ([`Task`]); the
//! worker does what Kubeflow's launcher does with them: it builds the executor input, fills every
//! placeholder, and afterwards reads the output parameter files and the executor output.

use crate::value::{ParamType, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a KFP component's container is launched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Launch {
    pub command: Vec<String>,
    pub args: Vec<String>,
    #[serde(default)]
    pub inputs: Vec<Io>,
    #[serde(default)]
    pub outputs: Vec<Io>,
    /// A `dsl.importer`: no container runs; the worker copies the artifact the URI names (a
    /// file or directory on its host, `file:///PATH`) into its output `artifact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importer: Option<Importer>,
}

/// What a `dsl.importer` imports: its URI (a constant, or the input parameter holding it) and
/// the metadata it gives the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Importer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The URIs an importer reads: `file:///PATH`, a plain absolute path on the worker's host (no
/// `..`). The path, or why the URI is not one sluice imports.
pub fn import_path(uri: &str) -> Result<&str, String> {
    let Some(path) = uri.strip_prefix("file://") else {
        let scheme = uri.split_once("://").map(|(s, _)| s).unwrap_or("");
        return Err(format!(
            "sluice imports `file:///PATH` URIs (a file or directory on the worker's host, in a path the server allows with --allow-host-path); `{uri}`{} is not one",
            if scheme.is_empty() { String::new() } else { format!(" ({scheme}://)") }
        ));
    };
    if !path.starts_with('/')
        || path.split('/').any(|c| c == ".." || c == ".")
        || path.contains("//")
    {
        return Err(format!(
            "import URI `{uri}` must name a plain absolute path (no `.` or `..`)"
        ));
    }
    Ok(path)
}

impl Launch {
    pub fn input(&self, name: &str) -> Option<&Io> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// One input or output of a component, typed as the IR declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Io {
    pub name: String,
    #[serde(flatten)]
    pub ty: IoType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IoType {
    Parameter {
        #[serde(rename = "type")]
        ty: ParameterType,
    },
    Artifact {
        /// `system.Dataset`, `system.Metrics`, …
        schema_title: String,
        schema_version: String,
        /// An input that takes a list of artifacts (`List[Input[Dataset]]`, `dsl.Collected`).
        #[serde(default)]
        list: bool,
    },
}

/// A parameter's type in the IR (`parameterType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    String,
    NumberInteger,
    NumberDouble,
    Boolean,
    List,
    Struct,
    /// `dsl.PipelineTaskFinalStatus`: how the tasks an exit handler watches ended.
    TaskFinalStatus,
}

impl ParameterType {
    pub fn from_ir(s: &str) -> Option<ParameterType> {
        Some(match s {
            "STRING" => ParameterType::String,
            "NUMBER_INTEGER" => ParameterType::NumberInteger,
            "NUMBER_DOUBLE" => ParameterType::NumberDouble,
            "BOOLEAN" => ParameterType::Boolean,
            "LIST" => ParameterType::List,
            "STRUCT" => ParameterType::Struct,
            "TASK_FINAL_STATUS" => ParameterType::TaskFinalStatus,
            _ => return None,
        })
    }

    /// The sluice parameter type values of this type are checked against.
    pub fn sluice(self) -> ParamType {
        match self {
            ParameterType::String | ParameterType::TaskFinalStatus => ParamType::String,
            ParameterType::NumberInteger => ParamType::Int,
            ParameterType::NumberDouble => ParamType::Float,
            ParameterType::Boolean => ParamType::Bool,
            ParameterType::List => ParamType::List,
            ParameterType::Struct => ParamType::Object,
        }
    }

    /// A value as this type holds it: the IR writes every number as a double (protobuf's
    /// `Value`), so an integer compiled as `3.0` is the integer 3.
    pub fn normalize(self, v: Value) -> Value {
        match (self, &v) {
            (ParameterType::NumberInteger, Value::Number(n)) if !n.is_i64() && !n.is_u64() => {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                    _ => v,
                }
            }
            _ => v,
        }
    }
}

/// What a worker needs to launch one task of a KFP component: the contract and the task's
/// resolved input values. Input artifacts travel in the task's own list (with their metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Task {
    pub launch: Launch,
    /// Input parameter values, typed as declared (absent: an optional input not given).
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// `{{$.pipeline_job_name}}` and `{{$.pipeline_job_uuid}}`: the run's name and id.
    pub job_name: String,
    pub job_id: String,
    /// `{{$.pipeline_task_name}}` and `{{$.pipeline_task_uuid}}`: the task's name and a unique id.
    pub task_name: String,
    pub task_id: String,
}

/// The executor output file a KFP component writes (`outputs.outputFile` in its executor input),
/// beside its output parameter files.
pub const EXECUTOR_OUTPUT: &str = "executor_output.json";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_compiled_as_doubles_are_integers() {
        let t = ParameterType::NumberInteger;
        assert_eq!(t.normalize(json!(3.0)), json!(3));
        assert_eq!(t.normalize(json!(3.5)), json!(3.5));
        assert_eq!(
            ParameterType::NumberDouble.normalize(json!(3.0)),
            json!(3.0)
        );
    }
}
