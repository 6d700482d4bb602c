//! Kubeflow Pipelines v2: a `PipelineSpec` as `kfp.compiler` writes it (and the platform spec
//! document after it, when the file has one) becomes a sluice pipeline.
//!
//! Each executor component becomes a component whose template keeps KFP's launch contract
//! ([`crate::kfp::Launch`]); each sub-DAG (a nested pipeline, a condition, a loop, an exit
//! handler's body) becomes a group; `componentInputParameter`s are followed out to what feeds them
//! (a pipeline parameter, an upstream task's output, a loop's item, a constant), so the engine sees
//! plain references. Every field is checked: one the IR may carry and sluice does not run is an
//! error at its place, and so is one this importer does not know (a newer kfp's).

mod cel;
mod dag;
mod inputs;
mod platform;

use crate::diag::{Diagnostics, Span};
use crate::kfp::{Io, IoType, Launch, ParameterType};
use crate::parse::group::{self, Parsed};
use crate::parse::{entries, string, string_list, Fields};
use crate::yaml::{Kind, Node};
use crate::{ArtifactDecl, Component, Control, ParamDecl, Pipeline, Resources, Spanned, Template};
use std::collections::HashMap;

/// How deep sub-DAGs may nest (each level a component that is a DAG).
const MAX_DEPTH: usize = 32;

/// The IR's top-level fields.
const TOP: &[&str] = &[
    "pipelineInfo",
    "root",
    "components",
    "deploymentSpec",
    "schemaVersion",
    "sdkVersion",
    "defaultPipelineRoot",
];

/// The parts of the document the tasks refer to.
pub(crate) struct Ir<'a> {
    components: HashMap<&'a str, &'a Node>,
    executors: HashMap<&'a str, &'a Node>,
    /// The kubernetes platform spec of each executor, by its label.
    platform: HashMap<&'a str, &'a Node>,
    /// The platform spec asks for a workspace (`PipelineConfig(workspace=…)`).
    workspace: bool,
    /// sluice components made so far, by KFP component name.
    made: HashMap<String, ()>,
    out: Vec<Component>,
}

/// Imports a PipelineSpec (`docs[0]`) and its platform spec (`docs[1]`, if any).
pub(crate) fn pipeline(docs: &[Node], d: &mut Diagnostics) -> Option<Pipeline> {
    let doc = &docs[0];
    let f = Fields::new(doc, "the Kubeflow pipeline", &[TOP], d)?;
    if let Some(v) = f.get("schemaVersion").and_then(Node::scalar_text) {
        if !v.starts_with("2.") {
            d.error(
                f.get("schemaVersion").map(|n| n.span).unwrap_or(doc.span),
                format!(
                    "PipelineSpec schemaVersion `{v}` is not supported: sluice reads 2.x (kfp 2)"
                ),
            );
        }
    }
    let name = f
        .required("pipelineInfo", "the Kubeflow pipeline", d)
        .and_then(|n| {
            Fields::new(
                n,
                "pipelineInfo",
                &[&["name", "description", "displayName"]],
                d,
            )
        })
        .map(|p| {
            let name = p.get("name").and_then(|n| string(n, "name", d));
            let description = p
                .get("description")
                .and_then(|n| string(n, "description", d))
                .map(|s| s.value);
            (name.map(|n| n.value).unwrap_or_default(), description)
        });
    let mut ir = Ir {
        components: HashMap::new(),
        executors: HashMap::new(),
        platform: HashMap::new(),
        workspace: false,
        made: HashMap::new(),
        out: Vec::new(),
    };
    if let Some(n) = f.get("components") {
        for (k, v) in entries(n, "components", d) {
            ir.components.insert(k.name.as_str(), v);
        }
    }
    if let Some(n) = f.get("deploymentSpec") {
        if let Some(ds) = Fields::new(n, "deploymentSpec", &[&["executors"]], d) {
            if let Some(e) = ds.get("executors") {
                for (k, v) in entries(e, "executors", d) {
                    ir.executors.insert(k.name.as_str(), v);
                }
            }
        }
    }
    if let Some(p) = docs.get(1) {
        platform::index(p, &mut ir, d);
    }
    for extra in docs.iter().skip(2) {
        d.error(
            extra.span,
            "a Kubeflow pipeline file holds the PipelineSpec and at most one platform spec after it",
        );
    }
    let root = f.required("root", "the Kubeflow pipeline", d)?;
    let root = Fields::new(
        root,
        "root",
        &[&["dag", "inputDefinitions", "outputDefinitions"]],
        d,
    )?;
    let (mut params, mut artifacts) = (Vec::new(), Vec::new());
    let mut env = dag::Env::default();
    if let Some(defs) = root.get("inputDefinitions") {
        let io = io_defs(defs, "root.inputDefinitions", d);
        for p in io.params {
            env.params.insert(
                p.name.clone(),
                serde_json::Value::String(format!("{{{{params.{}}}}}", p.name)),
            );
            params.push(p);
        }
        // The pipeline's input artifacts: given to each run when it is submitted.
        for a in io.artifacts {
            env.artifacts
                .insert(a.name.clone(), format!("{{{{artifacts.{}}}}}", a.name));
            artifacts.push(a);
        }
    }
    let dag_node = root.required("dag", "root", d)?;
    let body = dag::body(&mut ir, dag_node, &env, "root", 0, d);
    if let Some(defs) = root.get("outputDefinitions") {
        // Pipeline outputs are the root DAG's bound outputs; they are checked like a group's.
        let _ = io_defs(defs, "root.outputDefinitions", d);
    }
    let mut steps = Vec::new();
    group::flatten(body.steps, None, false, &mut steps);
    let on_exit = body.on_exit.into_iter().map(|p| p.step).collect();
    let mut step_index = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        step_index.entry(s.name.clone()).or_insert(i);
    }
    let (name, description) = name.unwrap_or_default();
    Some(Pipeline {
        name,
        description,
        params,
        artifacts,
        components: ir.out,
        steps,
        on_exit,
        timeout: None,
        // A Kubeflow pod has the cluster's network: here, the worker's default.
        network: None,
        span: doc.span,
        step_index,
        outputs: body.outputs,
        workspace: ir.workspace,
    })
}

/// A component's inputs or outputs (`inputDefinitions`, `outputDefinitions`), as sluice
/// declarations and as the IR types them.
pub(crate) struct IoDefs {
    params: Vec<ParamDecl>,
    artifacts: Vec<ArtifactDecl>,
    typed: Vec<Io>,
}

fn io_defs(node: &Node, what: &str, d: &mut Diagnostics) -> IoDefs {
    let mut out = IoDefs {
        params: Vec::new(),
        artifacts: Vec::new(),
        typed: Vec::new(),
    };
    let Some(f) = Fields::new(node, what, &[&["parameters", "artifacts"]], d) else {
        return out;
    };
    if let Some(ps) = f.get("parameters") {
        for (k, v) in entries(ps, "parameters", d) {
            let at = format!("parameter `{}` of {what}", k.name);
            let Some(p) = Fields::new(
                v,
                &at,
                &[&[
                    "parameterType",
                    "defaultValue",
                    "isOptional",
                    "description",
                    "type",
                ]],
                d,
            ) else {
                continue;
            };
            if let Some(t) = p.get("type") {
                d.error(t.span, format!("{at} uses the pre-2.0 `type` field; recompile the pipeline with kfp 2 (it writes `parameterType`)"));
                continue;
            }
            let Some(tn) = p
                .required("parameterType", &at, d)
                .and_then(|n| string(n, "parameterType", d))
            else {
                continue;
            };
            let Some(ty) = ParameterType::from_ir(&tn.value) else {
                d.error(tn.span, format!("{at} has parameterType `{}`, which sluice does not know (it knows STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT, TASK_FINAL_STATUS)", tn.value));
                continue;
            };
            let default = p.get("defaultValue").map(|n| ty.normalize(n.to_json()));
            let optional = matches!(p.get("isOptional").map(|n| &n.kind), Some(Kind::Bool(true)));
            out.params.push(ParamDecl {
                name: k.name.clone(),
                ty: ty.sluice(),
                default,
                optional,
                description: p
                    .get("description")
                    .and_then(|n| string(n, "description", d))
                    .map(|s| s.value),
                span: k.span,
            });
            out.typed.push(Io {
                name: k.name.clone(),
                ty: IoType::Parameter { ty },
            });
        }
    }
    if let Some(arts) = f.get("artifacts") {
        for (k, v) in entries(arts, "artifacts", d) {
            let at = format!("artifact `{}` of {what}", k.name);
            let Some(a) = Fields::new(
                v,
                &at,
                &[&[
                    "artifactType",
                    "isArtifactList",
                    "isOptional",
                    "description",
                ]],
                d,
            ) else {
                continue;
            };
            if let Some(n) = a.get("isOptional") {
                if matches!(n.kind, Kind::Bool(true)) {
                    d.error(n.span, format!("{at} is optional; sluice's artifact inputs are always bound (give it an upstream artifact)"));
                }
            }
            let (title, version) = a
                .required("artifactType", &at, d)
                .and_then(|n| {
                    Fields::new(
                        n,
                        "artifactType",
                        &[&["schemaTitle", "schemaVersion", "instanceSchema"]],
                        d,
                    )
                })
                .map(|t| {
                    if let Some(n) = t.get("instanceSchema") {
                        d.error(n.span, format!("{at} is typed by an instance schema; sluice knows artifacts by their schemaTitle"));
                    }
                    let s = |k: &str, d: &mut Diagnostics| {
                        t.get(k)
                            .and_then(|n| string(n, k, d))
                            .map(|s| s.value)
                            .unwrap_or_default()
                    };
                    (s("schemaTitle", d), s("schemaVersion", d))
                })
                .unwrap_or_default();
            let list = a
                .get("isArtifactList")
                .is_some_and(|n| matches!(n.kind, Kind::Bool(true)));
            out.artifacts.push(ArtifactDecl {
                name: k.name.clone(),
                kind: Some(title.clone()).filter(|t| !t.is_empty()),
                description: a
                    .get("description")
                    .and_then(|n| string(n, "description", d))
                    .map(|s| s.value),
                span: k.span,
            });
            out.typed.push(Io {
                name: k.name.clone(),
                ty: IoType::Artifact {
                    schema_title: title,
                    schema_version: version,
                    list,
                },
            });
        }
    }
    out
}

/// The sluice component for KFP component `name` (an executor's), made on first use.
fn executor_component(
    ir: &mut Ir,
    name: &str,
    comp: &Node,
    span: Span,
    d: &mut Diagnostics,
) -> Option<String> {
    if ir.made.contains_key(name) {
        return Some(name.to_string());
    }
    let what = format!("component `{name}`");
    let f = Fields::new(
        comp,
        &what,
        &[&[
            "executorLabel",
            "inputDefinitions",
            "outputDefinitions",
            "dag",
            "singlePlatformSpecs",
            "description",
        ]],
        d,
    )?;
    if let Some(n) = f.get("singlePlatformSpecs") {
        d.error(
            n.span,
            format!(
                "{what} has singlePlatformSpecs (a Vertex AI feature), which sluice does not run"
            ),
        );
    }
    let label = f
        .required("executorLabel", &what, d)
        .and_then(|n| string(n, "executorLabel", d))?;
    let inputs = f
        .get("inputDefinitions")
        .map(|n| io_defs(n, &format!("{what} inputs"), d))
        .unwrap_or_else(|| io_defs(&empty(), "", d));
    let outputs = f
        .get("outputDefinitions")
        .map(|n| io_defs(n, &format!("{what} outputs"), d))
        .unwrap_or_else(|| io_defs(&empty(), "", d));
    let Some(exec) = ir.executors.get(label.value.as_str()).copied() else {
        d.error(
            label.span,
            format!(
                "{what} names executor `{}`, which deploymentSpec.executors does not have",
                label.value
            ),
        );
        return None;
    };
    let mut template = executor(exec, &label.value, &inputs, &outputs, d)?;
    if let Some(p) = ir.platform.get(label.value.as_str()).copied() {
        platform::apply(p, &label.value, &mut template, d);
    }
    ir.made.insert(name.to_string(), ());
    ir.out.push(Component {
        name: name.to_string(),
        description: f
            .get("description")
            .and_then(|n| string(n, "description", d))
            .map(|s| s.value),
        template,
        control: Control::default(),
        span,
    });
    Some(name.to_string())
}

fn empty() -> Node {
    Node {
        span: Span::default(),
        kind: Kind::Map(Vec::new()),
    }
}

/// An executor (`deploymentSpec.executors[label]`) as a template.
fn executor(
    node: &Node,
    label: &str,
    inputs: &IoDefs,
    outputs: &IoDefs,
    d: &mut Diagnostics,
) -> Option<Template> {
    let what = format!("executor `{label}`");
    let f = Fields::new(
        node,
        &what,
        &[&["container", "importer", "resolver", "customJob"]],
        d,
    )?;
    for k in ["resolver", "customJob"] {
        if let Some(n) = f.get(k) {
            d.error(n.span, format!("{what} is a `{k}` executor, which sluice does not run (it runs containers and importers)"));
        }
    }
    if let Some(n) = f.get("importer") {
        return dag::importer_template(n, &what, inputs, outputs, d);
    }
    let c = f.required("container", &what, d)?;
    let c = Fields::new(
        c,
        &format!("{what} container"),
        &[&["image", "command", "args", "env", "resources", "lifecycle"]],
        d,
    )?;
    if let Some(n) = c.get("lifecycle") {
        d.error(
            n.span,
            format!("{what} sets container lifecycle hooks, which sluice does not run"),
        );
    }
    let image = c
        .required("image", &what, d)
        .and_then(|n| string(n, "image", d))?;
    let list = |k: &str, d: &mut Diagnostics| {
        c.get(k)
            .and_then(|n| string_list(n, k, d))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect::<Vec<_>>()
    };
    let command = list("command", d);
    let args = list("args", d);
    let mut env = Vec::new();
    if let Some(n) = c.get("env") {
        match &n.kind {
            Kind::Seq(items) => {
                for item in items {
                    let Some(e) = Fields::new(item, "env", &[&["name", "value"]], d) else {
                        continue;
                    };
                    let (Some(name), value) = (
                        e.required("name", "env", d)
                            .and_then(|n| string(n, "name", d)),
                        e.get("value").and_then(|n| string(n, "value", d)),
                    ) else {
                        continue;
                    };
                    let value = value.unwrap_or_else(|| Spanned::new(String::new(), name.span));
                    if value.value.contains("{{") {
                        d.error(value.span, format!("environment variable `{}` holds a placeholder; sluice passes KFP env values as they are", name.value));
                        continue;
                    }
                    env.push((name.value, value));
                }
            }
            _ => d.error(
                n.span,
                format!("`env` of {what} must be a list of {{name, value}}"),
            ),
        }
    }
    let resources = c
        .get("resources")
        .map(|n| resources(n, &what, d))
        .unwrap_or_default();
    Some(Template {
        image,
        env,
        resources,
        inputs: crate::Io {
            params: inputs.params.clone(),
            artifacts: inputs.artifacts.clone(),
        },
        outputs: crate::Io {
            params: outputs.params.clone(),
            artifacts: outputs.artifacts.clone(),
        },
        kfp: Some(Box::new(Launch {
            command,
            args,
            inputs: inputs.typed.clone(),
            outputs: outputs.typed.clone(),
            importer: None,
        })),
        ..Template::default()
    })
}

/// A container's resources: limits as sluice's limits; requests (scheduling hints on a
/// Kubernetes cluster) are accepted and change nothing; an accelerator's count is its GPUs.
fn resources(node: &Node, what: &str, d: &mut Diagnostics) -> Resources {
    let mut r = Resources::default();
    let Some(f) = Fields::new(
        node,
        &format!("resources of {what}"),
        &[&[
            "cpuLimit",
            "memoryLimit",
            "cpuRequest",
            "memoryRequest",
            "resourceCpuLimit",
            "resourceMemoryLimit",
            "resourceCpuRequest",
            "resourceMemoryRequest",
            "accelerator",
        ]],
        d,
    ) else {
        return r;
    };
    let text = |k: &str| f.get(k).and_then(|n| n.scalar_text().map(|t| (t, n.span)));
    // The string forms (kfp ≥ 2.1) say what was written; the numbers are the older encoding.
    if let Some((t, span)) = text("resourceCpuLimit").or_else(|| text("cpuLimit")) {
        r.cpu_millis = crate::parse_cpu(&t);
        if r.cpu_millis.is_none() {
            d.error(
                span,
                format!("CPU limit `{t}` of {what} is not a number of cores"),
            );
        }
    }
    if let Some((t, span)) = text("resourceMemoryLimit") {
        r.memory_bytes = crate::parse_bytes(&t);
        if r.memory_bytes.is_none() {
            d.error(span, format!("memory limit `{t}` of {what} is not a size"));
        }
    } else if let Some(n) = f.get("memoryLimit") {
        // The older form: gigabytes as a number.
        r.memory_bytes = n
            .to_json()
            .as_f64()
            .filter(|g| *g > 0.0)
            .map(|g| (g * 1e9) as u64);
    }
    if let Some(a) = f.get("accelerator") {
        if let Some(a) = Fields::new(
            a,
            "accelerator",
            &[&["type", "count", "resourceType", "resourceCount"]],
            d,
        ) {
            let count = a
                .get("resourceCount")
                .or_else(|| a.get("count"))
                .and_then(|n| n.scalar_text().map(|t| (t, n.span)));
            if let Some((t, span)) = count {
                match t.parse::<u32>() {
                    Ok(n) => r.gpu = n,
                    Err(_) => d.error(
                        span,
                        format!("accelerator count `{t}` of {what} is not a whole number"),
                    ),
                }
            }
            if let Some(t) = a.get("resourceType").or_else(|| a.get("type")) {
                let ty = t.scalar_text().unwrap_or_default();
                if !ty.is_empty()
                    && !ty.to_ascii_lowercase().contains("nvidia")
                    && !ty.to_ascii_lowercase().contains("gpu")
                {
                    d.error(
                        t.span,
                        format!(
                            "accelerator `{ty}` of {what}: sluice's workers offer NVIDIA GPUs only"
                        ),
                    );
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests;
