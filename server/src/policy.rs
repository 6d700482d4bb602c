//! Admission: what the operator lets pipelines ask of the hosts their steps run on, checked when
//! a pipeline is uploaded or a run is made, as Kubernetes' Pod Security admission does. By
//! default a step may not mount a host path, share the host's network or run without the
//! seccomp profile; the operator allows each (host paths under named prefixes), and may limit
//! the registries images come from, the named volumes steps mount and what one step may ask for.

use sluice_spec::{NetworkMode, Pipeline, Template};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Host directories steps may mount (`hostPath:` at or under one of them).
    pub host_paths: Vec<PathBuf>,
    /// Steps may share the host's network (`network: host`).
    pub host_network: bool,
    /// Steps may run without the seccomp profile (`seccomp: unconfined`).
    pub unconfined: bool,
    /// Registries images may come from (`docker.io`, `127.0.0.1:5000`); any when `None`.
    pub registries: Option<Vec<String>>,
    /// Named volumes steps may mount; any when `None`.
    pub volumes: Option<Vec<String>>,
    pub max_cpu_millis: Option<u64>,
    pub max_memory_bytes: Option<u64>,
    pub max_disk_bytes: Option<u64>,
    pub max_gpu: Option<u32>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Denial {
    /// The rule's name (`hostPath`, `hostNetwork`, `seccomp`, `registry`, `volume`,
    /// `resources`).
    pub rule: &'static str,
    pub step: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step `{}` (line {}): {} [rule {}]",
            self.step, self.line, self.message, self.rule
        )
    }
}

/// The registry an image reference names, as Docker reads it: the first part when it looks like
/// a host (a dot, a port or `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".into(),
    }
}

impl Policy {
    /// Every rule the pipeline breaks, step by step (exit handlers included).
    pub fn check(&self, p: &Pipeline) -> Vec<Denial> {
        let mut out = Vec::new();
        for step in p.steps.iter().chain(&p.on_exit) {
            if let Some(t) = p.template_of(step) {
                self.check_template(&step.name, step.span.line, t, p.network, &mut out);
                self.check_import(step, t, &mut out);
            }
        }
        out
    }

    /// A Kubeflow importer reads a host path: one this server allows, known at submit.
    fn check_import(&self, step: &sluice_spec::Step, t: &Template, out: &mut Vec<Denial>) {
        let Some(imp) = t.kfp.as_ref().and_then(|k| k.importer.as_ref()) else {
            return;
        };
        let uri = imp.uri.clone().or_else(|| {
            let p = imp.uri_param.as_deref()?;
            let v = step.params.iter().find(|b| b.name == p)?.value.as_str()?;
            (!v.contains("{{")).then(|| v.to_string())
        });
        let message = match uri.as_deref().map(sluice_spec::kfp::import_path) {
            None => Some("imports a URI known only at run time: this server checks what an importer reads when the run is submitted; give the URI as a constant".to_string()),
            Some(Err(e)) => Some(e),
            Some(Ok(path)) if !self.host_paths.iter().any(|prefix| Path::new(path).starts_with(prefix)) => Some(match self.host_paths.is_empty() {
                true => format!("imports host path `{path}`: this server allows no host paths (its operator allows some with --allow-host-path)"),
                false => format!("imports host path `{path}`, outside those this server allows"),
            }),
            Some(Ok(_)) => None,
        };
        if let Some(message) = message {
            out.push(Denial {
                rule: "hostPath",
                step: step.name.clone(),
                line: step.span.line,
                message,
            });
        }
    }

    fn check_template(
        &self,
        step: &str,
        line: usize,
        t: &Template,
        default_network: Option<NetworkMode>,
        out: &mut Vec<Denial>,
    ) {
        let mut deny = |rule, line: usize, message: String| {
            out.push(Denial {
                rule,
                step: step.to_string(),
                line,
                message,
            })
        };
        let registry = registry_of(&t.image.value);
        // An importer runs no image.
        let no_image = t.image.value.is_empty();
        if let (Some(allowed), false) = (&self.registries, no_image) {
            if !allowed.iter().any(|r| r.eq_ignore_ascii_case(&registry)) {
                deny(
                    "registry",
                    t.image.span.line.max(line),
                    format!(
                        "image `{}` is from registry `{registry}`, not one this server allows ({})",
                        t.image.value,
                        allowed.join(", ")
                    ),
                );
            }
        }
        for v in &t.volumes {
            if let Some(hp) = &v.host_path {
                let path = Path::new(hp);
                let allowed = sluice_sdk::beneath::plain_absolute(path)
                    && self
                        .host_paths
                        .iter()
                        .any(|prefix| path.starts_with(prefix));
                if !allowed {
                    deny(
                        "hostPath",
                        v.span.line,
                        match self.host_paths.is_empty() {
                            true => format!(
                                "mounts host path `{hp}`: this server allows no host paths \
                                 (its operator allows some with --allow-host-path)"
                            ),
                            false => format!(
                                "mounts host path `{hp}`, outside those this server allows ({})",
                                self.host_paths
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        },
                    );
                }
            }
            if let (Some(name), Some(allowed)) = (&v.name, &self.volumes) {
                if !allowed.iter().any(|a| a == name) {
                    deny(
                        "volume",
                        v.span.line,
                        format!("mounts named volume `{name}`, not one this server allows"),
                    );
                }
            }
        }
        if t.network.or(default_network) == Some(NetworkMode::Host) && !self.host_network {
            deny(
                "hostNetwork",
                line,
                "asks for the host's network (`network: host`), which this server does not allow \
                 (its operator may, with --allow-host-network)"
                    .into(),
            );
        }
        if t.seccomp_unconfined && !self.unconfined {
            deny(
                "seccomp",
                line,
                "asks to run without the seccomp profile (`seccomp: unconfined`), which this \
                 server does not allow (its operator may, with --allow-unconfined)"
                    .into(),
            );
        }
        let r = &t.resources;
        let over = |asked: Option<u64>, max: Option<u64>| matches!((asked, max), (Some(a), Some(m)) if a > m);
        let mut limits = Vec::new();
        if over(r.cpu_millis, self.max_cpu_millis) {
            limits.push(format!(
                "cpu {}m over the most a step may have, {}m",
                r.cpu_millis.unwrap_or(0),
                self.max_cpu_millis.unwrap_or(0)
            ));
        }
        if over(r.memory_bytes, self.max_memory_bytes) {
            limits.push(format!(
                "memory {} over the most a step may have, {}",
                sluice_spec::format_bytes(r.memory_bytes.unwrap_or(0)),
                sluice_spec::format_bytes(self.max_memory_bytes.unwrap_or(0))
            ));
        }
        if over(r.disk_bytes, self.max_disk_bytes) {
            limits.push(format!(
                "disk {} over the most a step may have, {}",
                sluice_spec::format_bytes(r.disk_bytes.unwrap_or(0)),
                sluice_spec::format_bytes(self.max_disk_bytes.unwrap_or(0))
            ));
        }
        if over(Some(r.gpu as u64), self.max_gpu.map(u64::from)) {
            limits.push(format!(
                "{} GPU(s) over the most a step may have, {}",
                r.gpu,
                self.max_gpu.unwrap_or(0)
            ));
        }
        for l in limits {
            deny("resources", line, format!("asks for {l}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Pipeline {
        sluice_spec::load("p.yaml", yaml).unwrap_or_else(|d| panic!("{d}"))
    }

    fn rules(policy: &Policy, yaml: &str) -> Vec<(&'static str, String)> {
        policy
            .check(&load(yaml))
            .into_iter()
            .map(|d| (d.rule, d.step))
            .collect()
    }

    #[test]
    fn registries_are_read_as_docker_reads_them() {
        for (image, reg) in [
            ("busybox", "docker.io"),
            ("library/busybox:1", "docker.io"),
            ("ghcr.io/org/img:1", "ghcr.io"),
            ("127.0.0.1:5000/sluice/busybox:1", "127.0.0.1:5000"),
            ("localhost/img", "localhost"),
            ("Registry.Example.ORG/x", "registry.example.org"),
        ] {
            assert_eq!(registry_of(image), reg, "{image}");
        }
    }

    #[test]
    fn the_default_policy_denies_host_paths_host_network_and_unconfined_steps() {
        let yaml = "name: p
steps:
  - name: ok
    image: busybox
    volumes: [{name: datasets, path: /data}]
    command: [\"true\"]
  - name: root
    image: busybox
    volumes: [{hostPath: /, path: /host, writable: true}]
    command: [\"true\"]
  - name: net
    image: busybox
    network: host
    command: [\"true\"]
  - name: open
    image: busybox
    seccomp: unconfined
    command: [\"true\"]
";
        let denied = Policy::default().check(&load(yaml));
        let got: Vec<_> = denied.iter().map(|d| (d.rule, d.step.as_str())).collect();
        assert_eq!(
            got,
            [
                ("hostPath", "root"),
                ("hostNetwork", "net"),
                ("seccomp", "open")
            ]
        );
        assert_eq!(denied[0].line, 9);
        assert!(denied[0].to_string().contains("`/`"), "{}", denied[0]);
        // What the operator allows passes.
        let open = Policy {
            host_paths: vec!["/".into()],
            host_network: true,
            unconfined: true,
            ..Default::default()
        };
        assert!(open.check(&load(yaml)).is_empty());
    }

    /// A Kubeflow importer's URI, in the compiled form: a constant, or the `uri` input.
    fn importer(uri_input: &str) -> String {
        format!(
            "components:
  comp-importer:
    executorLabel: exec-importer
    inputDefinitions: {{parameters: {{uri: {{parameterType: STRING}}}}}}
    outputDefinitions:
      artifacts: {{artifact: {{artifactType: {{schemaTitle: system.Dataset, schemaVersion: 0.0.1}}}}}}
deploymentSpec:
  executors:
    exec-importer:
      importer:
        artifactUri: {{runtimeParameter: uri}}
        typeSchema: {{schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
pipelineInfo: {{name: p}}
root:
  inputDefinitions: {{parameters: {{where: {{parameterType: STRING, defaultValue: file:///srv/data/x}}}}}}
  dag:
    tasks:
      importer:
        componentRef: {{name: comp-importer}}
        inputs: {{parameters: {{uri: {uri_input}}}}}
schemaVersion: 2.1.0
"
        )
    }

    #[test]
    fn an_importer_reads_only_host_paths_the_policy_allows_known_at_submit() {
        let policy = Policy {
            host_paths: vec!["/srv/data".into()],
            ..Default::default()
        };
        let allowed = importer("{runtimeValue: {constant: 'file:///srv/data/rows.csv'}}");
        assert!(policy.check(&load(&allowed)).is_empty());
        for (input, says) in [
            (
                "{runtimeValue: {constant: 'file:///etc/shadow'}}",
                "`/etc/shadow`, outside",
            ),
            (
                "{runtimeValue: {constant: 'file:///srv/data/../../etc/shadow'}}",
                "plain absolute",
            ),
            ("{componentInputParameter: where}", "known only at run time"),
        ] {
            let denied = policy.check(&load(&importer(input)));
            assert_eq!(denied.len(), 1, "{input}");
            assert_eq!(denied[0].rule, "hostPath");
            assert!(denied[0].message.contains(says), "{input}: {}", denied[0]);
        }
    }

    #[test]
    fn admission_table() {
        let step = |body: &str| {
            format!("name: p\nsteps:\n  - name: s\n    image: IMG\n    command: [\"true\"]\n{body}")
        };
        let policy = Policy {
            host_paths: vec!["/srv/data".into()],
            registries: Some(vec!["127.0.0.1:5000".into()]),
            volumes: Some(vec!["datasets".into()]),
            max_cpu_millis: Some(4000),
            max_memory_bytes: Some(8 << 30),
            max_disk_bytes: Some(10 << 30),
            max_gpu: Some(1),
            ..Default::default()
        };
        let local = "127.0.0.1:5000/sluice/busybox:1";
        let table: &[(&str, &str, &[&str])] = &[
            (local, "", &[]),
            ("busybox", "", &["registry"]),
            ("ghcr.io/x/y:1", "", &["registry"]),
            (
                local,
                "    volumes: [{hostPath: /srv/data/iris, path: /d}]\n",
                &[],
            ),
            (
                local,
                "    volumes: [{hostPath: /srv/data, path: /d}]\n",
                &[],
            ),
            (
                local,
                "    volumes: [{hostPath: /srv/database, path: /d}]\n",
                &["hostPath"],
            ),
            (
                local,
                "    volumes: [{hostPath: /srv/data/../../etc, path: /d}]\n",
                &["hostPath"],
            ),
            (
                local,
                "    volumes: [{hostPath: /etc, path: /d}]\n",
                &["hostPath"],
            ),
            (local, "    volumes: [{name: datasets, path: /d}]\n", &[]),
            (
                local,
                "    volumes: [{name: other, path: /d}]\n",
                &["volume"],
            ),
            (local, "    network: host\n", &["hostNetwork"]),
            (local, "    seccomp: unconfined\n", &["seccomp"]),
            (
                local,
                "    resources: {cpu: 4, memory: 8Gi, disk: 10Gi, gpu: 1}\n",
                &[],
            ),
            (local, "    resources: {cpu: 5}\n", &["resources"]),
            (local, "    resources: {memory: 9Gi}\n", &["resources"]),
            (local, "    resources: {disk: 11Gi}\n", &["resources"]),
            (local, "    resources: {gpu: 2}\n", &["resources"]),
            (
                "busybox",
                "    network: host\n    volumes: [{hostPath: /, path: /h}]\n",
                &["registry", "hostPath", "hostNetwork"],
            ),
        ];
        for (image, body, want) in table {
            let yaml = step(body).replace("IMG", image);
            let got: Vec<_> = rules(&policy, &yaml).into_iter().map(|(r, _)| r).collect();
            assert_eq!(&got, want, "{yaml}");
        }
    }

    #[test]
    fn exit_handlers_and_components_are_checked_too() {
        let yaml = "name: p
components:
  c:
    image: busybox
    network: host
    command: [\"true\"]
steps:
  - name: a
    component: c
onExit:
  - name: h
    image: busybox
    volumes: [{hostPath: /etc, path: /e}]
    command: [\"true\"]
";
        assert_eq!(
            rules(&Policy::default(), yaml),
            [
                ("hostNetwork", "a".to_string()),
                ("hostPath", "h".to_string())
            ]
        );
    }
}
