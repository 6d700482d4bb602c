//! Resolution of a ready task: its inputs' values and every `{{…}}` in what it runs.

use super::{Run, TaskOutputs};
use crate::task::{
    EnvVar, InputArtifact, OutputArtifact, OutputParam, ResourceRequest, SecretUse, TaskSpec,
    VolumeMount,
};
use sluice_spec::refs::{self, IoKind, Piece, Ref};
use sluice_spec::state::Params;
use sluice_spec::{paths, render, Spanned, Step, Value};

/// Where an inline step that names the run's input artifact `NAME` directly sees it:
/// `/sluice/inputs/artifacts/run-inputs/NAME` (no bound input's name holds a `/`).
pub const RUN_INPUTS: &str = "run-inputs";

/// The task's input parameter values and its runnable spec, or why it cannot run.
pub(super) fn resolve(run: &Run, idx: usize, attempt: u32) -> Result<(Params, TaskSpec), String> {
    let p = &run.pipeline;
    let step = run.step_of(idx);
    let tpl = p
        .template_of(step)
        .ok_or_else(|| format!("step `{}` uses a component that does not exist", step.name))?;
    let ctx = Ctx {
        run,
        idx,
        step,
        attempt,
    };

    // Input parameters: bound values, then defaults; checked against declared types.
    let mut inputs = Params::new();
    for b in &step.params {
        let mut value = ctx.value(&b.value)?;
        // A Kubeflow input is typed as the IR says: its numbers come as doubles (an int as 2.0).
        if let Some(ty) = tpl
            .kfp
            .as_ref()
            .and_then(|k| k.input(&b.name))
            .and_then(|i| match i.ty {
                sluice_spec::kfp::IoType::Parameter { ty } => Some(ty),
                _ => None,
            })
        {
            value = ty.normalize(value);
        }
        let value = match tpl.inputs.param(&b.name) {
            Some(decl) => decl
                .ty
                .check(&value)
                .map_err(|e| format!("input parameter `{}` is {}: {e}", b.name, decl.ty))?,
            None => value,
        };
        inputs.insert(b.name.clone(), value);
    }
    for decl in &tpl.inputs.params {
        if !inputs.contains_key(&decl.name) {
            if let Some(v) = &decl.default {
                inputs.insert(decl.name.clone(), v.clone());
            }
        }
    }

    // Input artifacts: bound ones, and those an inline step names directly.
    let mut input_artifacts = Vec::new();
    for b in &step.artifacts {
        let r = b.value.as_str().and_then(refs::sole_ref);
        if let Some(Ref::RunArtifact(name)) = &r {
            input_artifacts.push(ctx.run_artifact(&b.name, name)?);
            continue;
        }
        let Some(Ref::StepOutput {
            step: producer,
            name,
            ..
        }) = r
        else {
            return Err(format!(
                "input artifact `{}` is not an upstream output",
                b.name
            ));
        };
        input_artifacts.extend(ctx.artifact(&b.name, &producer, &name)?);
    }

    // A Kubeflow step's command and arguments hold KFP's placeholders: the worker fills them.
    let kfp = tpl.kfp.as_ref().map(|launch| sluice_spec::kfp::Task {
        launch: (**launch).clone(),
        values: inputs.clone(),
        job_name: run.name.clone(),
        job_id: run.id.clone(),
        task_name: run.plan.tasks[idx].name.clone(),
        task_id: format!("{}.{}.{attempt}", run.id, run.plan.tasks[idx].name),
    });
    let mut direct = Vec::new();
    let mut sub = |s: &str| ctx.text(s, &inputs, &mut direct);
    let mut sub_all = |list: &Option<Vec<Spanned<String>>>| {
        list.as_ref()
            .map(|c| {
                c.iter()
                    .map(|s| sub(&s.value))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
    };
    let command = sub_all(&tpl.command)?;
    let mut args = sub_all(&tpl.args)?;
    let script = tpl.script.as_ref().map(|s| sub(&s.value)).transpose()?;
    let env = tpl
        .env
        .iter()
        .map(|(name, v)| {
            Ok(EnvVar {
                name: name.clone(),
                value: sub(&v.value)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let working_dir = tpl
        .working_dir
        .as_ref()
        .map(|s| sub(&s.value))
        .transpose()?;
    for (producer, name) in direct {
        let Some(producer) = producer else {
            let mounted = format!("{RUN_INPUTS}/{name}");
            if !input_artifacts.iter().any(|a| a.name == mounted) {
                input_artifacts.push(ctx.run_artifact(&mounted, &name)?);
            }
            continue;
        };
        let mounted = format!("{producer}.{name}");
        let known =
            |a: &InputArtifact| a.name == mounted || a.name.starts_with(&format!("{mounted}/"));
        if !input_artifacts.iter().any(known) {
            input_artifacts.extend(ctx.artifact(&mounted, &producer, &name)?);
        }
    }
    let command = match (&script, command) {
        (Some(_), None) => Some(vec!["sh".to_string()]),
        (_, c) => c,
    };
    if script.is_some() {
        args = Some(vec![paths::SCRIPT.to_string()]);
    }

    let daemon = run.pipeline.daemon(step).map(|d| d.value.clone());
    let spec = TaskSpec {
        image: tpl.image.value.clone(),
        command,
        args,
        env,
        working_dir,
        script,
        resources: ResourceRequest {
            cpu_millis: tpl.resources.cpu_millis,
            memory_bytes: tpl.resources.memory_bytes,
            disk_bytes: tpl.resources.disk_bytes,
            gpu: tpl.resources.gpu,
        },
        hostname: hostname(&run.plan.tasks[idx].name),
        input_artifacts,
        output_params: tpl
            .outputs
            .params
            .iter()
            .map(|o| OutputParam {
                name: o.name.clone(),
                ty: o.ty,
                path: format!("{}/{}", paths::OUTPUT_PARAMS, o.name),
            })
            .collect(),
        output_artifacts: tpl
            .outputs
            .artifacts
            .iter()
            .map(|o| OutputArtifact {
                name: o.name.clone(),
                path: format!("{}/{}", paths::OUTPUT_ARTIFACTS, o.name),
                kind: o.kind.clone(),
            })
            .collect(),
        // A daemon serves on its run's network, whatever the worker's default.
        network: tpl
            .network
            .or(run.pipeline.network)
            .or(daemon.is_some().then_some(sluice_spec::NetworkMode::Bridge)),
        daemon,
        seccomp_unconfined: tpl.seccomp_unconfined,
        node_selector: tpl
            .node_selector
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        timeout_ms: run.pipeline.control(step).timeout.map(|t| t.value),
        volumes: tpl
            .volumes
            .iter()
            .map(|v| VolumeMount {
                name: v.name.clone(),
                host_path: v.host_path.clone(),
                path: v.path.clone(),
                writable: v.writable,
            })
            // A run's workspace: the worker's named volume of the run, in every step.
            .chain(p.workspace.then(|| VolumeMount {
                name: Some(format!("workspace-{}", run.id)),
                host_path: None,
                path: paths::WORKSPACE.to_string(),
                writable: true,
            }))
            .collect(),
        kfp,
        secrets: tpl
            .secrets
            .iter()
            .map(|r| SecretUse {
                name: r.secret.clone(),
                env: r.env.clone(),
                path: r.path.clone(),
                version: None,
            })
            .collect(),
    };
    Ok((inputs, spec))
}

/// A DNS label made from a step name.
fn hostname(name: &str) -> String {
    let h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    h.trim_matches('-').to_string()
}

struct Ctx<'a> {
    run: &'a Run,
    /// The task being resolved.
    idx: usize,
    step: &'a Step,
    attempt: u32,
}

impl Ctx<'_> {
    /// The task `producer` (as written in this task's step) means.
    fn producer(&self, producer: &str) -> Result<usize, String> {
        self.run
            .producer(self.idx, producer)
            .ok_or_else(|| format!("unknown step `{producer}`"))
    }

    fn outputs_of(&self, producer: &str) -> Result<&TaskOutputs, String> {
        Ok(&self.run.tasks[self.producer(producer)?].outputs)
    }

    /// The run's input artifact `name`, mounted at `mounted`.
    fn run_artifact(&self, mounted: &str, name: &str) -> Result<InputArtifact, String> {
        let rec = self
            .run
            .inputs
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| format!("the run was given no input artifact `{name}`"))?;
        Ok(InputArtifact {
            name: mounted.to_string(),
            path: format!("{}/{mounted}", paths::INPUT_ARTIFACTS),
            uri: rec.uri.clone(),
            producer: String::new(),
            metadata: rec.metadata.clone(),
            digest: Some(rec.digest.clone()),
            size: Some(rec.size),
        })
    }

    /// The input artifact(s) for `producer`'s output `name`, mounted at `mounted`: one, or for a
    /// loop one per iteration, at `mounted/0`, `mounted/1`… (the loop records `name[k]`).
    fn artifact(
        &self,
        mounted: &str,
        producer: &str,
        name: &str,
    ) -> Result<Vec<InputArtifact>, String> {
        let p = self.producer(producer)?;
        let records = &self.run.tasks[p].outputs.artifacts;
        let task = &self.run.plan.tasks[p].name;
        let at = |path: String, rec: &crate::task::ArtifactRecord| InputArtifact {
            name: path.clone(),
            path: format!("{}/{path}", paths::INPUT_ARTIFACTS),
            uri: rec.uri.clone(),
            producer: task.clone(),
            metadata: rec.metadata.clone(),
            digest: Some(rec.digest.clone()),
            size: Some(rec.size),
        };
        if let Some(rec) = records.iter().find(|a| a.name == name) {
            return Ok(vec![at(mounted.to_string(), rec)]);
        }
        let prefix = format!("{name}[");
        let gathered: Vec<InputArtifact> = records
            .iter()
            .filter_map(|a| {
                // `name[k]`, or `name[k][j]` for loops in loops: mounted at `k/j`.
                let k = a.name.strip_prefix(&prefix)?.strip_suffix(']')?;
                Some(at(format!("{mounted}/{}", k.replace("][", "/")), a))
            })
            .collect();
        let looped = self.run.plan.tasks[p].iterations.is_some();
        if gathered.is_empty() && !looped {
            return Err(format!(
                "step `{producer}` did not record its output artifact `{name}`"
            ));
        }
        Ok(gathered)
    }

    fn lookup(&self, r: &Ref) -> Result<Value, String> {
        match r {
            Ref::Param(name) => self
                .run
                .params
                .get(name)
                .cloned()
                .ok_or_else(|| format!("pipeline parameter `{name}` has no value")),
            Ref::StepOutput {
                step,
                kind: IoKind::Param,
                name,
            } => self
                .outputs_of(step)?
                .params
                .get(name)
                .cloned()
                .ok_or_else(|| format!("step `{step}` did not produce output parameter `{name}`")),
            Ref::Context("run.id") => Ok(Value::String(self.run.id.clone())),
            Ref::Context("run.name") => Ok(Value::String(self.run.name.clone())),
            Ref::Context("task.name") => Ok(Value::String(self.step.name.clone())),
            Ref::Context("task.attempt") => Ok(Value::from(self.attempt)),
            Ref::Context("run.status") => Ok(Value::String(self.run.status().into())),
            Ref::Context("group.status") => {
                Ok(Value::String(self.run.group_status(self.idx).into()))
            }
            Ref::Item { .. } => self.run.item_value(self.idx, r),
            Ref::StepIp(step) => {
                let p = self.producer(step)?;
                match &self.run.tasks[p].address {
                    Some(a) if self.run.serving(p) => Ok(Value::String(a.clone())),
                    _ => Err(format!(
                        "step `{step}` is not serving, so it has no address"
                    )),
                }
            }
            other => Err(format!("`{{{{{other}}}}}` cannot be used here")),
        }
    }

    /// A binding's value: a sole reference keeps its type; text with references becomes a string.
    fn value(&self, v: &Value) -> Result<Value, String> {
        let Value::String(s) = v else {
            return Ok(v.clone());
        };
        if let Some(r) = refs::sole_ref(s) {
            return self.lookup(&r);
        }
        let mut out = String::new();
        for piece in refs::parse(s)? {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Ref(r) => out.push_str(&render(&self.lookup(&r)?)),
            }
        }
        Ok(Value::String(out))
    }

    /// Substitutes every reference in a command, argument, script, env value or working directory.
    /// Upstream artifacts named directly are collected in `direct` so that they get mounted
    /// (with no producer: the run's own input artifacts).
    fn text(
        &self,
        s: &str,
        inputs: &sluice_spec::state::Params,
        direct: &mut Vec<(Option<String>, String)>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in refs::parse(s)? {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Ref(r) => {
                    let v = match &r {
                        Ref::Input(IoKind::Param, name) => render(
                            inputs
                                .get(name)
                                .ok_or_else(|| format!("input parameter `{name}` has no value"))?,
                        ),
                        Ref::Input(IoKind::Artifact, name) => {
                            format!("{}/{name}", paths::INPUT_ARTIFACTS)
                        }
                        Ref::Output(IoKind::Param, name) => {
                            format!("{}/{name}", paths::OUTPUT_PARAMS)
                        }
                        Ref::Output(IoKind::Artifact, name) => {
                            format!("{}/{name}", paths::OUTPUT_ARTIFACTS)
                        }
                        Ref::StepOutput {
                            step,
                            kind: IoKind::Artifact,
                            name,
                        } => {
                            direct.push((Some(step.clone()), name.clone()));
                            format!("{}/{step}.{name}", paths::INPUT_ARTIFACTS)
                        }
                        Ref::RunArtifact(name) => {
                            direct.push((None, name.clone()));
                            format!("{}/{RUN_INPUTS}/{name}", paths::INPUT_ARTIFACTS)
                        }
                        other => render(&self.lookup(other)?),
                    };
                    out.push_str(&v);
                }
            }
        }
        Ok(out)
    }
}
