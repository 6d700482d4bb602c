//! The pipeline model: what a pipeline file says, after parsing and validation.
//!
//! Every other pipeline format is imported into this one model (`import` is their home); the engine
//! knows only it. Nothing here does I/O: no tokio, reqwest, axum, sqlx or rustls (Cargo enforces it,
//! this crate cannot see them).

pub mod cond;
pub mod diag;
pub mod digest;
pub mod ids;
pub mod import;
pub mod kfp;
pub mod labels;
pub(crate) mod parse;
pub mod refs;
pub mod state;
pub mod uri;
mod validate;
pub mod value;
pub mod yaml;

use crate::diag::{Diagnostics, Span};
pub use parse::{format_bytes, parse_bytes, parse_cpu, parse_duration_ms};
pub use validate::{dependencies, is_name};
pub use value::{render, ParamType, Value};

/// The container-side locations where a step finds its inputs and leaves its outputs.
pub mod paths {
    pub const INPUT_ARTIFACTS: &str = "/sluice/inputs/artifacts";
    pub const OUTPUT_ARTIFACTS: &str = "/sluice/outputs/artifacts";
    pub const OUTPUT_PARAMS: &str = "/sluice/outputs/params";
    pub const SCRIPT: &str = "/sluice/script";
    /// A run's shared workspace (Kubeflow's `{{$.workspace_path}}`).
    pub const WORKSPACE: &str = "/kfp-workspace";
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    pub params: Vec<ParamDecl>,
    /// Its input artifacts: files or directories each run is given when it is submitted
    /// (`sluice submit --input NAME=PATH`), bound to steps as `{{artifacts.NAME}}`.
    pub artifacts: Vec<ArtifactDecl>,
    pub components: Vec<Component>,
    /// Every step, groups' steps included (after their group, named `GROUP.STEP`), in file order.
    pub steps: Vec<Step>,
    /// Steps that run when the pipeline finishes, whatever its outcome (exit handlers).
    pub on_exit: Vec<Step>,
    /// A run taking longer than this (milliseconds) is stopped and fails.
    pub timeout: Option<Spanned<u64>>,
    /// The network of its steps that choose none (`network:` at the top).
    pub network: Option<NetworkMode>,
    /// What the run outputs, each bound to a step's output (a Kubeflow pipeline's outputs).
    pub outputs: Outputs,
    /// A directory every step of a run shares, writable, at [`paths::WORKSPACE`] (a Kubeflow
    /// pipeline's `PipelineConfig` workspace): the worker's named volume of the run.
    pub workspace: bool,
    pub span: Span,
    /// Qualified step name to its position in `steps` (the first, where a name repeats).
    pub step_index: std::collections::HashMap<String, usize>,
}

/// A typed parameter: a pipeline input, or a step's input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<Value>,
    pub description: Option<String>,
    /// May be left without a value even with no default (a Kubeflow input's `isOptional`).
    pub optional: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactDecl {
    pub name: String,
    /// What the artifact holds (`dataset`, `model`, `metrics`, …); free text, `artifact` when unset.
    pub kind: Option<String>,
    pub description: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Io {
    pub params: Vec<ParamDecl>,
    pub artifacts: Vec<ArtifactDecl>,
}

impl Io {
    pub fn param(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn artifact(&self, name: &str) -> Option<&ArtifactDecl> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// CPU in thousandths of a core (`500m` = 500, `2` = 2000).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// What the step may write: its writable layer and its outputs (ephemeral storage).
    pub disk_bytes: Option<u64>,
    pub gpu: u32,
}

/// What runs: an image with a command, or an inline script.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub image: Spanned<String>,
    /// Replaces the image's entrypoint when set (as Kubernetes' `command` does).
    pub command: Option<Vec<Spanned<String>>>,
    /// Replaces the image's cmd when set (as Kubernetes' `args` does).
    pub args: Option<Vec<Spanned<String>>>,
    /// Source run by `command` (default `sh`), written to [`paths::SCRIPT`] in the container.
    pub script: Option<Spanned<String>>,
    pub env: Vec<(String, Spanned<String>)>,
    pub working_dir: Option<Spanned<String>>,
    pub resources: Resources,
    pub inputs: Io,
    pub outputs: Io,
    /// Which network the step gets (`network:`); unset, the pipeline's `network:`, else the
    /// worker's default (`bridge` unless its operator says otherwise).
    pub network: Option<NetworkMode>,
    pub volumes: Vec<Volume>,
    /// Run without the default seccomp profile (`seccomp: unconfined`), where the worker allows it.
    pub seccomp_unconfined: bool,
    /// Secrets the step receives, as environment variables or files.
    pub secrets: Vec<SecretRef>,
    /// The worker labels a worker must offer to run the step (`nodeSelector: {gpu: a100}`), as
    /// Kubernetes' `nodeSelector` picks nodes: every `NAME: VALUE` must match.
    pub node_selector: std::collections::BTreeMap<String, Spanned<String>>,
    /// A step imported from a Kubeflow pipeline: its command and arguments as KFP writes them,
    /// filled by the worker as Kubeflow's launcher fills them (`command` and `args` are unset).
    pub kfp: Option<Box<kfp::Launch>>,
}

/// A secret a step uses: `env: {NAME: {secret: S}}` puts its value in variable `NAME`;
/// `secrets: [S]` (or `{name: S, path: P}`) puts it in a read-only file, `/run/secrets/S` unless
/// a path is given, as Docker does.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef {
    /// The secret's name on the server.
    pub secret: String,
    /// The environment variable it is given as.
    pub env: Option<String>,
    /// The file it is given as.
    pub path: Option<String>,
    pub span: Span,
}

impl SecretRef {
    /// Where a file secret goes when no path is given.
    pub fn default_path(secret: &str) -> String {
        format!("/run/secrets/{secret}")
    }
}

/// The network a step's container gets, as Docker names them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of its own with loopback only.
    #[default]
    None,
    /// A network namespace of its own on the worker's bridge for its run: an address, a default
    /// route out through NAT, and the run's other steps by name.
    Bridge,
    /// The host's network namespace, shared.
    Host,
}

impl NetworkMode {
    pub const ALL: [NetworkMode; 3] = [NetworkMode::None, NetworkMode::Bridge, NetworkMode::Host];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NetworkMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a network: expected `none`, `bridge` or `host`"))
    }
}

/// A host directory or a named volume mounted into a step (datasets shared across runs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Volume {
    /// A named volume, kept by the worker and shared by every run there.
    pub name: Option<String>,
    /// A path on the worker's host.
    pub host_path: Option<String>,
    /// Where the step sees it.
    pub path: String,
    /// Read-only unless declared writable.
    pub writable: bool,
    pub span: Span,
}

impl Template {
    /// Every string a container sees, where `{{…}}` references may appear.
    pub fn strings(&self) -> impl Iterator<Item = &Spanned<String>> {
        self.command
            .iter()
            .flatten()
            .chain(self.args.iter().flatten())
            .chain(&self.script)
            .chain(self.env.iter().map(|(_, v)| v))
            .chain(&self.working_dir)
    }
}

/// Control flow a step or component may ask for. Parsed into the model so that importers can map
/// Kubeflow's and Argo's features onto it; validation reports what this version does not run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Control {
    pub when: Option<Spanned<String>>,
    pub for_each: Option<Spanned<Value>>,
    pub parallelism: Option<Spanned<u32>>,
    pub retry: Option<Spanned<Retry>>,
    pub timeout: Option<Spanned<u64>>,
    pub cache: Option<Spanned<Cache>>,
    /// The step serves (`daemon: true`, as Argo's daemoned steps): the steps after it start once
    /// it is up, reach it by name or `{{steps.NAME.ip}}`, and it is stopped when the other steps
    /// of its group (or run) have ended.
    pub daemon: Option<Spanned<Daemon>>,
}

/// How a daemon step says it is up.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Daemon {
    /// A TCP port it serves on: the steps after it wait until it accepts connections there.
    /// Unset, they start once its container has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Control {
    pub fn is_empty(&self) -> bool {
        *self == Control::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub limit: u32,
    pub backoff_initial_ms: u64,
    pub backoff_factor: f64,
    pub backoff_max_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub enabled: bool,
    pub max_age_secs: Option<u64>,
    /// A key the results are cached under in place of the one sluice works out (a Kubeflow
    /// task's `cacheKey`): tasks with equal keys share results.
    pub key: Option<String>,
}

/// Outputs bound to steps' outputs: a group's, or the pipeline's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outputs {
    pub params: Vec<Binding>,
    pub artifacts: Vec<Binding>,
}

/// A reusable step definition, used by several steps with different arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: String,
    pub description: Option<String>,
    pub template: Template,
    pub control: Control,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Uses {
    Component(Spanned<String>),
    Inline(Box<Template>),
    /// A group of steps that run together: a condition, a loop or exit handlers on the group
    /// apply to them all.
    Group(Box<Group>),
}

/// What a group holds. Its steps live in [`Pipeline::steps`] too, named `GROUP.STEP`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Its steps, as indices into [`Pipeline::steps`].
    pub steps: Vec<usize>,
    /// Steps that run once the group's steps have all ended, whatever the outcome.
    pub on_exit: Vec<usize>,
    /// Its output parameters, each bound to an output of one of its steps.
    pub params: Vec<Binding>,
    /// Its output artifacts, each bound to an output artifact of one of its steps.
    pub artifacts: Vec<Binding>,
}

/// A value given to a step's input: a literal, or text with `{{…}}` references.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub name: String,
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub description: Option<String>,
    pub uses: Uses,
    pub params: Vec<Binding>,
    pub artifacts: Vec<Binding>,
    pub depends_on: Vec<Spanned<String>>,
    pub control: Control,
    pub span: Span,
    /// The group the step is in (an index into [`Pipeline::steps`]); `None` at the top.
    pub parent: Option<usize>,
    /// One of its group's exit handlers.
    pub handler: bool,
    /// The name shown for it, where it differs from its name (a Kubeflow task's display name).
    pub display_name: Option<String>,
}

impl Step {
    /// The name the step was given in its group (its `name` is qualified: `GROUP.STEP`).
    pub fn local_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    pub fn group(&self) -> Option<&Group> {
        match &self.uses {
            Uses::Group(g) => Some(g),
            _ => None,
        }
    }
}

impl Pipeline {
    /// A step's control settings: its own, each falling back to its component's.
    /// A step's `daemon`, its own or its component's, without copying the rest of its control.
    pub fn daemon<'a>(&'a self, step: &'a Step) -> Option<&'a Spanned<Daemon>> {
        step.control.daemon.as_ref().or_else(|| match &step.uses {
            Uses::Component(name) => self.component(&name.value)?.control.daemon.as_ref(),
            _ => None,
        })
    }

    pub fn control(&self, step: &Step) -> Control {
        let mut c = step.control.clone();
        if let Uses::Component(name) = &step.uses {
            if let Some(comp) = self.component(&name.value) {
                let base = &comp.control;
                c.when = c.when.or_else(|| base.when.clone());
                c.for_each = c.for_each.or_else(|| base.for_each.clone());
                c.parallelism = c.parallelism.or_else(|| base.parallelism.clone());
                c.retry = c.retry.or_else(|| base.retry.clone());
                c.timeout = c.timeout.or_else(|| base.timeout.clone());
                c.cache = c.cache.or_else(|| base.cache.clone());
                c.daemon = c.daemon.or_else(|| base.daemon.clone());
            }
        }
        c
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Whether `s` is one of the pipeline's exit handlers (`onExit`).
    pub fn is_exit_handler(&self, s: &Step) -> bool {
        self.on_exit.iter().any(|e| std::ptr::eq(e, s))
    }

    /// The steps a run has tasks for, in task order: the steps, then the exit handlers.
    pub fn task_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.on_exit)
    }

    /// The step of task `i` (see [`Pipeline::task_steps`]).
    pub fn task_step(&self, i: usize) -> &Step {
        match self.steps.get(i) {
            Some(s) => s,
            None => &self.on_exit[i - self.steps.len()],
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.step_index.get(name).map(|&i| &self.steps[i])
    }

    /// The step a task runs, from the task's name (`tune[0].train[1]` runs `tune.train`).
    pub fn step_of_task(&self, task: &str) -> Option<&Step> {
        let name: Vec<&str> = task
            .split('.')
            .map(|seg| seg.split('[').next().unwrap_or(seg))
            .collect();
        let name = name.join(".");
        self.step(&name)
            .or_else(|| self.on_exit.iter().find(|e| e.name == name))
    }

    /// Whether the task named `task` is an exit handler (of the pipeline or of a group).
    pub fn is_handler_task(&self, task: &str) -> bool {
        self.step_of_task(task)
            .is_some_and(|s| s.handler || self.is_exit_handler(s))
    }

    /// The step a reference written in step `from` means by `name`: a step of `from`'s own group,
    /// else of the group around that, and so on out to the top (as names in nested scopes
    /// resolve). Returns its qualified name.
    pub fn lookup(&self, from: &Step, name: &str) -> Option<&str> {
        if from.parent.is_none() {
            return self
                .step_index
                .get(name)
                .map(|&i| self.steps[i].name.as_str());
        }
        let mut scope = from.parent;
        loop {
            let qualified = match scope {
                Some(g) => format!("{}.{name}", self.steps[g].name),
                None => name.to_string(),
            };
            if let Some(&i) = self.step_index.get(&qualified) {
                return Some(&self.steps[i].name);
            }
            scope = self.steps[scope?].parent;
        }
    }

    /// Whether step `s` is inside group `g`, at any depth.
    pub fn is_within(&self, s: &Step, g: usize) -> bool {
        let mut at = s.parent;
        while let Some(p) = at {
            if p == g {
                return true;
            }
            at = self.steps[p].parent;
        }
        false
    }

    /// The loops around step `s`, innermost first: `s` itself when it has `forEach`, then each
    /// enclosing group that has one.
    pub fn loops_around<'a>(&'a self, s: &'a Step) -> impl Iterator<Item = &'a Step> + 'a {
        std::iter::successors(Some(s), |s| s.parent.map(|p| &self.steps[p]))
            .filter(|s| self.control(s).for_each.is_some())
    }

    pub fn param(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The template a step runs. Validation guarantees that component references resolve.
    pub fn template_of<'a>(&'a self, step: &'a Step) -> Option<&'a Template> {
        match &step.uses {
            Uses::Inline(t) => Some(t),
            Uses::Component(name) => self.component(&name.value).map(|c| &c.template),
            Uses::Group(_) => None,
        }
    }
}

/// What one pipeline may cost: to load its file, and to plan a run of it. An operator can raise
/// them (`sluice server --max-…`); hitting one is an error that names it and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub yaml: crate::yaml::YamlLimits,
    /// Most tasks one run may have, every loop expanded.
    pub max_tasks: usize,
    /// Most items one loop may have.
    pub max_loop_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            yaml: Default::default(),
            max_tasks: 50_000,
            max_loop_items: 10_000,
        }
    }
}

/// Loads a pipeline file with the default [`Limits`].
pub fn load(file: &str, source: &str) -> Result<Pipeline, Diagnostics> {
    load_with(file, source, &Limits::default())
}

/// Parses and validates a pipeline file; every problem found, with its place, on failure.
pub fn load_with(file: &str, source: &str, limits: &Limits) -> Result<Pipeline, Diagnostics> {
    use import::Format;
    let mut diags = Diagnostics::new(file);
    let pipeline = crate::yaml::parse_documents_with(source, &limits.yaml, &mut diags).and_then(
        |docs| match import::format_of(&docs[0]) {
            Format::Sluice => parse::pipeline(&docs[0], &mut diags),
            Format::Kfp => import::kfp::pipeline(&docs, &mut diags),
            Format::KfpV1 => {
                diags.error(docs[0].span, "this is a Kubeflow Pipelines v1 file (an Argo Workflow compiled by kfp 1.x); sluice runs kfp 2 pipelines: compile it with kfp 2 (`kfp.compiler.Compiler().compile(pipeline, \"p.yaml\")`)");
                None
            }
        },
    );
    if let Some(p) = &pipeline {
        validate::pipeline(p, &mut diags);
    }
    diags.finish();
    match pipeline {
        Some(p) if diags.is_empty() => Ok(p),
        _ => Err(diags),
    }
}

/// The sha256 of a pipeline file's bytes, as `sha256:<hex>`.
pub fn digest(source: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(source.as_bytes()))
    )
}

#[cfg(test)]
mod tests;
