//! Kubeflow's launcher, done natively for a task of an imported Kubeflow pipeline: before the
//! container starts, build the executor input and fill every placeholder in its command and
//! arguments; after it exits 0, read its output parameter files and its executor output
//! (parameter values, artifact metadata such as `Metrics.log_metric`), typed as the IR declares.
//!
//! An artifact's URI, as the container sees it, is the path it is mounted at (inputs read-only
//! under `/sluice/inputs/artifacts`, outputs under `/sluice/outputs/artifacts`): kfp's executor
//! derives a local path from a URI, and for a URI of no remote scheme that path is the URI itself.

use serde_json::{json, Map, Value};
use sluice_sdk::api::{ArtifactRecord, TaskResult, TaskSpec};
use sluice_sdk::beneath::{self, Links};
use sluice_spec::kfp::{IoType, ParameterType, Task, EXECUTOR_OUTPUT};
use sluice_spec::paths;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest executor output file read; past it the attempt fails.
pub const MAX_EXECUTOR_OUTPUT: u64 = 16 << 20;

/// Fills the task's command and arguments from its KFP launch contract.
pub fn launch(spec: &mut TaskSpec) -> Result<(), String> {
    let Some(k) = spec.kfp.as_ref() else {
        return Ok(());
    };
    let ctx = Ctx {
        task: k,
        executor_input: executor_input(spec, k).to_string(),
        spec,
    };
    let command = ctx.expand_all(&k.launch.command)?;
    let args = ctx.expand_all(&k.launch.args)?;
    spec.command = (!command.is_empty()).then_some(command);
    spec.args = Some(args);
    Ok(())
}

fn output_file() -> String {
    format!("{}/{EXECUTOR_OUTPUT}", paths::OUTPUT_PARAMS)
}

/// The executor input (KFP's `ExecutorInput` as JSON) of this task.
pub fn executor_input(spec: &TaskSpec, k: &Task) -> Value {
    let mut params = Map::new();
    for io in &k.launch.inputs {
        let IoType::Parameter { ty } = io.ty else {
            continue;
        };
        let Some(v) = k.values.get(&io.name) else {
            continue;
        };
        let v = match (ty, v) {
            (ParameterType::TaskFinalStatus, v) => final_status(v, k),
            // KFP's run placeholders as an input's value (a default such as
            // `dsl.PIPELINE_JOB_NAME_PLACEHOLDER`) are filled, as its driver fills them.
            (_, Value::String(s)) if s.contains("{{$.") => Value::String(run_facts(s, k)),
            (ty, v) => ty.normalize(v.clone()),
        };
        params.insert(io.name.clone(), v);
    }
    let mut artifacts = Map::new();
    for io in &k.launch.inputs {
        let IoType::Artifact {
            schema_title,
            schema_version,
            ..
        } = &io.ty
        else {
            continue;
        };
        // One artifact is mounted at its name; a list (`dsl.Collected`) at `NAME/0`, `NAME/1`, …
        let prefix = format!("{}/", io.name);
        let mut list: Vec<(&str, Value)> = spec
            .input_artifacts
            .iter()
            .filter(|a| a.name == io.name || a.name.starts_with(&prefix))
            .map(|a| {
                (
                    a.name.as_str(),
                    json!({
                        "name": a.name,
                        "type": {"schemaTitle": schema_title, "schemaVersion": schema_version},
                        "uri": a.path,
                        "metadata": a.metadata.clone().unwrap_or_else(|| json!({})),
                    }),
                )
            })
            .collect();
        list.sort_by(|a, b| natural(a.0).cmp(&natural(b.0)));
        artifacts.insert(
            io.name.clone(),
            json!({"artifacts": list.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
        );
    }
    let mut out_params = Map::new();
    let mut out_artifacts = Map::new();
    for io in &k.launch.outputs {
        match &io.ty {
            IoType::Parameter { .. } => {
                out_params.insert(
                    io.name.clone(),
                    json!({"outputFile": format!("{}/{}", paths::OUTPUT_PARAMS, io.name)}),
                );
            }
            IoType::Artifact {
                schema_title,
                schema_version,
                ..
            } => {
                out_artifacts.insert(
                    io.name.clone(),
                    json!({"artifacts": [{
                        "name": io.name,
                        "type": {"schemaTitle": schema_title, "schemaVersion": schema_version},
                        "uri": format!("{}/{}", paths::OUTPUT_ARTIFACTS, io.name),
                        "metadata": {},
                    }]}),
                );
            }
        }
    }
    json!({
        "inputs": {"parameterValues": params, "artifacts": artifacts},
        "outputs": {"parameters": out_params, "artifacts": out_artifacts, "outputFile": output_file()},
    })
}

fn run_facts(s: &str, k: &Task) -> String {
    s.replace("{{$.pipeline_job_name}}", &k.job_name)
        .replace("{{$.pipeline_job_uuid}}", &k.job_id)
        .replace("{{$.pipeline_job_resource_name}}", &k.job_id)
        .replace("{{$.pipeline_task_name}}", &k.task_name)
        .replace("{{$.pipeline_task_uuid}}", &k.task_id)
        .replace("{{$.workspace_path}}", paths::WORKSPACE)
}

/// `NAME/10` after `NAME/9`: loop iterations in order.
fn natural(name: &str) -> (usize, &str) {
    let tail = name.rsplit('/').next().unwrap_or(name);
    (tail.parse().unwrap_or(usize::MAX), name)
}

/// A `PipelineTaskFinalStatus` from the watched group's status (`succeeded`, `failed`, …).
fn final_status(v: &Value, k: &Task) -> Value {
    let state = match v.as_str().unwrap_or_default() {
        "succeeded" => "SUCCEEDED",
        "failed" => "FAILED",
        "cancelled" => "CANCELLED",
        _ => "RUNNING",
    };
    let group = k.task_name.rsplit_once('.').map(|(g, _)| g).unwrap_or("");
    let error = if state == "FAILED" {
        json!({"code": 2, "message": format!("a task of `{group}` failed")})
    } else {
        json!({})
    };
    json!({
        "state": state,
        "pipelineJobResourceName": format!("runs/{}", k.job_id),
        "pipelineTaskName": group,
        "error": error,
    })
}

struct Ctx<'a> {
    task: &'a Task,
    spec: &'a TaskSpec,
    executor_input: String,
}

impl Ctx<'_> {
    fn expand_all(&self, list: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            self.expand_into(&Value::String(s.clone()), &mut out)?;
        }
        Ok(out)
    }

    /// One item of a command or argument list: a string (maybe a JSON placeholder), or a
    /// placeholder object; `IfPresent` may give none or several strings.
    fn expand_into(&self, item: &Value, out: &mut Vec<String>) -> Result<(), String> {
        match self.structured(item)? {
            Some(Structured::Many(items)) => {
                for i in &items {
                    self.expand_into(i, out)?;
                }
                Ok(())
            }
            Some(Structured::One(s)) => {
                out.push(s);
                Ok(())
            }
            None => {
                out.push(self.fill(item.as_str().unwrap_or_default())?);
                Ok(())
            }
        }
    }

    /// A `Concat` or `IfPresent` placeholder, as an object or as the JSON text of one.
    fn structured(&self, item: &Value) -> Result<Option<Structured>, String> {
        let parsed;
        let obj = match item {
            Value::Object(o) => o,
            Value::String(s) if s.starts_with("{\"Concat\"") || s.starts_with("{\"IfPresent\"") => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("placeholder `{s}` is not JSON: {e}"))?;
                match &parsed {
                    Value::Object(o) => o,
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        if let Some(parts) = obj.get("Concat") {
            let parts = parts.as_array().ok_or("`Concat` must hold a list")?;
            let mut s = String::new();
            for p in parts {
                let mut one = Vec::new();
                self.expand_into(p, &mut one)?;
                s.push_str(&one.concat());
            }
            return Ok(Some(Structured::One(s)));
        }
        if let Some(ip) = obj.get("IfPresent") {
            let name = ip
                .get("InputName")
                .and_then(Value::as_str)
                .ok_or("`IfPresent` must name its input")?;
            let branch = if self.present(name) { "Then" } else { "Else" };
            let items = match ip.get(branch) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(other) => vec![other.clone()],
            };
            return Ok(Some(Structured::Many(items)));
        }
        Err(format!(
            "unknown placeholder `{}`",
            Value::Object(obj.clone())
        ))
    }

    fn present(&self, name: &str) -> bool {
        let prefix = format!("{name}/");
        self.task.values.contains_key(name)
            || self
                .spec
                .input_artifacts
                .iter()
                .any(|a| a.name == name || a.name.starts_with(&prefix))
    }

    /// Every `{{$…}}` in `s` replaced.
    fn fill(&self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find("{{$") {
            out.push_str(&rest[..at]);
            let end = rest[at..]
                .find("}}")
                .ok_or_else(|| format!("placeholder in `{s}` is not closed"))?;
            let inner = &rest[at + 2..at + end];
            out.push_str(&self.value_of(inner)?);
            rest = &rest[at + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn value_of(&self, p: &str) -> Result<String, String> {
        let k = self.task;
        Ok(match p {
            "$" => self.executor_input.clone(),
            "$.pipeline_job_name" => k.job_name.clone(),
            "$.pipeline_job_uuid" | "$.pipeline_job_resource_name" => k.job_id.clone(),
            "$.pipeline_task_name" => k.task_name.clone(),
            "$.pipeline_task_uuid" => k.task_id.clone(),
            "$.pipeline_root" => paths::OUTPUT_ARTIFACTS.to_string(),
            "$.workspace_path" => paths::WORKSPACE.to_string(),
            _ => {
                let (kind, name, field) = parse_io(p)
                    .ok_or_else(|| format!("placeholder `{{{{{p}}}}}` is not one sluice fills"))?;
                match (kind, field) {
                    ("inputs.parameters", "") => {
                        let v = k.values.get(name).ok_or_else(|| {
                            format!("input parameter `{name}` has no value (an optional input is read inside IfPresent)")
                        })?;
                        let ty = k.launch.input(name).and_then(|i| match i.ty {
                            IoType::Parameter { ty } => Some(ty),
                            _ => None,
                        });
                        render(
                            &ty.map(|t| t.normalize(v.clone()))
                                .unwrap_or_else(|| v.clone()),
                        )
                    }
                    ("inputs.artifacts", "path" | "uri") => self
                        .spec
                        .input_artifacts
                        .iter()
                        .find(|a| a.name == name)
                        .map(|a| a.path.clone())
                        .unwrap_or_else(|| format!("{}/{name}", paths::INPUT_ARTIFACTS)),
                    ("inputs.artifacts", "metadata") => self
                        .spec
                        .input_artifacts
                        .iter()
                        .find(|a| a.name == name)
                        .and_then(|a| a.metadata.clone())
                        .unwrap_or_else(|| json!({}))
                        .to_string(),
                    ("outputs.parameters", "output_file") => {
                        format!("{}/{name}", paths::OUTPUT_PARAMS)
                    }
                    ("outputs.artifacts", "path" | "uri") => {
                        format!("{}/{name}", paths::OUTPUT_ARTIFACTS)
                    }
                    ("outputs.artifacts", "metadata") => "{}".to_string(),
                    _ => return Err(format!("placeholder `{{{{{p}}}}}` is not one sluice fills")),
                }
            }
        })
    }
}

enum Structured {
    One(String),
    Many(Vec<Value>),
}

/// `$.inputs.parameters['x']`, `$.inputs.artifacts['x'].path`, … as (kind, name, field).
fn parse_io(p: &str) -> Option<(&str, &str, &str)> {
    let rest = p.strip_prefix("$.")?;
    let open = rest.find('[')?;
    let kind = &rest[..open];
    let after = &rest[open + 1..];
    let q = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let close = after[1..].find(q)?;
    let name = &after[1..1 + close];
    let tail = after[1 + close + 1..].strip_prefix(']')?;
    let field = match tail {
        "" => "",
        t => t.strip_prefix('.')?,
    };
    Some((kind, name, field))
}

/// A parameter value as KFP puts it in a command line: a string as it is, anything else as JSON.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads what a KFP component left besides its output parameter files: its executor output's
/// parameter values (which take precedence, as Kubeflow's launcher gives them) and its artifacts'
/// metadata. Output artifacts it declared but did not write (a `Metrics` artifact is metadata
/// only) are recorded empty, so downstream tasks and the UI see them. Blocking.
pub fn outputs(
    spec: &TaskSpec,
    params_dir: &Path,
    artifacts_dir: &Path,
    params: &mut BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, String> {
    let Some(k) = &spec.kfp else {
        return Ok(BTreeMap::new());
    };
    let mut metadata = BTreeMap::new();
    let root = beneath::Dir::open(params_dir)
        .map_err(|e| format!("worker cannot read the executor output: {e}"))?;
    let mut text = Vec::new();
    match root.file(Path::new(EXECUTOR_OUTPUT), Links::Never) {
        Ok(f) => {
            f.take(MAX_EXECUTOR_OUTPUT + 1)
                .read_to_end(&mut text)
                .map_err(|e| format!("cannot read the executor output: {e}"))?;
        }
        Err(beneath::BeneathError::NotFound(_)) => {}
        Err(e) => return Err(format!("cannot read the executor output: {e}")),
    }
    if text.len() as u64 > MAX_EXECUTOR_OUTPUT {
        return Err(format!(
            "the executor output is over {MAX_EXECUTOR_OUTPUT} bytes (the limit)"
        ));
    }
    if !text.is_empty() {
        let out: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("the executor output is not JSON: {e}"))?;
        if let Some(values) = out.get("parameterValues").and_then(Value::as_object) {
            for (name, v) in values {
                let Some(io) = k.launch.outputs.iter().find(|o| &o.name == name) else {
                    return Err(format!(
                        "the executor output sets parameter `{name}`, which the component does not declare"
                    ));
                };
                let v = match io.ty {
                    IoType::Parameter { ty } => ty.normalize(v.clone()),
                    _ => v.clone(),
                };
                let text = render(&v);
                if text.len() as u64 > crate::outputs::MAX_PARAM_BYTES {
                    return Err(format!("output parameter `{name}` is {} bytes; parameters hold at most {} bytes, use an artifact", text.len(), crate::outputs::MAX_PARAM_BYTES));
                }
                params.insert(name.clone(), text);
            }
        }
        if let Some(arts) = out.get("artifacts").and_then(Value::as_object) {
            for (name, list) in arts {
                let m = list
                    .get("artifacts")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|a| a.get("metadata"))
                    .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()));
                if let Some(m) = m {
                    // Metadata travels to every consumer in its executor input: kept small.
                    let size = m.to_string().len() as u64;
                    if size > crate::outputs::MAX_PARAM_BYTES {
                        return Err(format!("the metadata of output artifact `{name}` is {size} bytes; metadata holds at most {} bytes", crate::outputs::MAX_PARAM_BYTES));
                    }
                    metadata.insert(name.clone(), m.clone());
                }
            }
        }
    }
    // Output parameters typed as declared: an integer written as `3.0` is 3.
    for io in &k.launch.outputs {
        if let (IoType::Parameter { ty }, Some(text)) = (&io.ty, params.get_mut(&io.name)) {
            if *ty == ParameterType::NumberInteger {
                if let Ok(f) = text.trim().parse::<f64>() {
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        *text = (f as i64).to_string();
                    }
                }
            }
        }
    }
    for a in &spec.output_artifacts {
        let path = artifacts_dir.join(&a.name);
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| format!("worker cannot record output artifact `{}`: {e}", a.name))?;
        }
    }
    Ok(metadata)
}

/// A `dsl.importer`'s attempt: no container; the file or directory its URI names on this host
/// (`file:///PATH`, which the server's policy allowed) is copied into its output artifact, read
/// without following a link (a link inside a directory is copied as a link). Blocking.
pub fn import(spec: &TaskSpec, artifacts_dir: &Path) -> TaskResult {
    import_into(spec, artifacts_dir).unwrap_or_else(TaskResult::failed)
}

fn import_into(spec: &TaskSpec, artifacts_dir: &Path) -> Result<TaskResult, String> {
    let k = spec.kfp.as_ref().ok_or("the task is not a Kubeflow task")?;
    let imp = k
        .launch
        .importer
        .as_ref()
        .ok_or("the task is not an importer")?;
    let uri = match (&imp.uri, &imp.uri_param) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => k
            .values
            .get(p)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the importer's URI input `{p}` has no text value"))?
            .to_string(),
        (None, None) => return Err("the importer names no URI".into()),
    };
    let path = Path::new(sluice_spec::kfp::import_path(&uri)?);
    let out = spec
        .output_artifacts
        .first()
        .ok_or("the importer declares no output artifact")?;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("cannot import `{uri}`: it names no file"));
    };
    let name = Path::new(name);
    let fail = |e: beneath::BeneathError| format!("cannot import `{uri}`: {e}");
    let src = beneath::Dir::open(parent).map_err(fail)?;
    let dest = artifacts_dir.join(&out.name);
    let copy = |from: std::fs::File, to: &Path| -> Result<(), String> {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .map_err(|e| format!("worker cannot write {}: {e}", to.display()))?;
        std::io::copy(&mut { from }, &mut w)
            .map(|_| ())
            .map_err(|e| format!("cannot import `{uri}`: {e}"))
    };
    match src.entry(name, Links::Never).map_err(fail)?.0 {
        beneath::Kind::File => copy(src.file(name, Links::Never).map_err(fail)?, &dest)?,
        beneath::Kind::Dir => {
            let d = src.dir(name, Links::Never).map_err(fail)?;
            let entries = d
                .walk(crate::outputs::MAX_ARTIFACT_ENTRIES)
                .map_err(fail)?
                .ok_or_else(|| {
                    format!(
                        "cannot import `{uri}`: it holds more than {} entries",
                        crate::outputs::MAX_ARTIFACT_ENTRIES
                    )
                })?;
            std::fs::create_dir(&dest)
                .map_err(|e| format!("worker cannot write {}: {e}", dest.display()))?;
            for e in entries {
                let to = dest.join(&e.path);
                match (e.kind, &e.target) {
                    (beneath::Kind::Dir, _) => std::fs::create_dir(&to)
                        .map_err(|err| format!("worker cannot write {}: {err}", to.display()))?,
                    (beneath::Kind::File, _) => {
                        copy(d.file(&e.path, Links::Never).map_err(fail)?, &to)?
                    }
                    (beneath::Kind::Link, Some(target)) => std::os::unix::fs::symlink(target, &to)
                        .map_err(|err| format!("worker cannot write {}: {err}", to.display()))?,
                    _ => {
                        return Err(format!(
                            "cannot import `{uri}`: {} is neither a file, a directory nor a link",
                            e.path.display()
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(format!(
                "cannot import `{uri}`: it is neither a file nor a directory"
            ))
        }
    }
    let mut records = crate::outputs::artifacts(spec, artifacts_dir)?;
    for r in &mut records {
        r.metadata = imp
            .metadata
            .clone()
            .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()));
    }
    Ok(TaskResult {
        exit_code: None,
        ..TaskResult::succeeded(0, BTreeMap::new(), records)
    })
}

/// Adds what the component said of each artifact to its record.
pub fn annotate(records: &mut [ArtifactRecord], metadata: BTreeMap<String, Value>) {
    for r in records {
        if let Some(m) = metadata.get(&r.name) {
            r.metadata = Some(m.clone());
        }
    }
}

#[cfg(test)]
mod tests;
