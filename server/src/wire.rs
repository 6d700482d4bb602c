//! The server's edge between the engine's types and the API's wire types. Each conversion
//! destructures what it converts, so a field added on one side and not the other does not compile.

use sluice_engine::task as e;
use sluice_sdk::api as w;

pub fn task_spec(s: e::TaskSpec) -> w::TaskSpec {
    let e::TaskSpec {
        image,
        command,
        args,
        env,
        working_dir,
        script,
        resources,
        hostname,
        input_artifacts,
        output_params,
        output_artifacts,
        network,
        daemon,
        volumes,
        timeout_ms,
        seccomp_unconfined,
        secrets,
        kfp,
        // Where the task runs was the scheduler's choice: the worker it was given to matched.
        node_selector: _,
    } = s;
    w::TaskSpec {
        image,
        command,
        args,
        env: env
            .into_iter()
            .map(|e::EnvVar { name, value }| w::EnvVar { name, value })
            .collect(),
        working_dir,
        script,
        resources: resources_of(resources),
        hostname,
        input_artifacts: input_artifacts
            .into_iter()
            .map(
                |e::InputArtifact {
                     name,
                     path,
                     uri,
                     producer,
                     metadata,
                     digest,
                     size,
                 }| w::InputArtifact {
                    name,
                    path,
                    uri,
                    producer,
                    metadata,
                    digest,
                    size,
                },
            )
            .collect(),
        output_params: output_params
            .into_iter()
            .map(|e::OutputParam { name, ty, path }| w::OutputParam { name, ty, path })
            .collect(),
        output_artifacts: output_artifacts
            .into_iter()
            .map(|e::OutputArtifact { name, path, kind }| w::OutputArtifact { name, path, kind })
            .collect(),
        network,
        daemon,
        volumes: volumes
            .into_iter()
            .map(
                |e::VolumeMount {
                     name,
                     host_path,
                     path,
                     writable,
                 }| w::VolumeMount {
                    name,
                    host_path,
                    path,
                    writable,
                },
            )
            .collect(),
        timeout_ms,
        seccomp_unconfined,
        secrets: secrets
            .into_iter()
            .map(
                |e::SecretUse {
                     name,
                     env,
                     path,
                     version,
                 }| w::SecretUse {
                    name,
                    env,
                    path,
                    version,
                },
            )
            .collect(),
        kfp,
    }
}

pub fn resources_of(r: e::ResourceRequest) -> w::ResourceRequest {
    let e::ResourceRequest {
        cpu_millis,
        memory_bytes,
        disk_bytes,
        gpu,
    } = r;
    w::ResourceRequest {
        cpu_millis,
        memory_bytes,
        disk_bytes,
        gpu,
    }
}

pub fn artifact(a: e::ArtifactRecord) -> w::ArtifactRecord {
    let e::ArtifactRecord {
        name,
        uri,
        size,
        digest,
        metadata,
        kind,
    } = a;
    w::ArtifactRecord {
        name,
        uri,
        size,
        digest,
        metadata,
        kind,
    }
}

pub fn artifacts(a: &[e::ArtifactRecord]) -> Vec<w::ArtifactRecord> {
    a.iter().cloned().map(artifact).collect()
}

/// A worker's report of how an attempt ended, as the engine takes it.
pub fn task_result(r: w::TaskResult) -> e::TaskResult {
    let w::TaskResult {
        outcome,
        exit_code,
        error,
        outputs,
        artifacts,
        cached_from,
    } = r;
    e::TaskResult {
        outcome,
        exit_code,
        error,
        outputs,
        artifacts: artifacts
            .into_iter()
            .map(
                |w::ArtifactRecord {
                     name,
                     uri,
                     size,
                     digest,
                     metadata,
                     kind,
                 }| e::ArtifactRecord {
                    name,
                    uri,
                    size,
                    digest,
                    metadata,
                    kind,
                },
            )
            .collect(),
        cached_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_crosses_the_edge_whole() {
        let spec = e::TaskSpec {
            image: "img".into(),
            command: Some(vec!["sh".into()]),
            args: Some(vec!["-c".into(), "true".into()]),
            env: vec![e::EnvVar {
                name: "A".into(),
                value: "1".into(),
            }],
            working_dir: Some("/w".into()),
            script: Some("echo".into()),
            resources: e::ResourceRequest {
                cpu_millis: Some(500),
                memory_bytes: Some(1 << 20),
                disk_bytes: Some(1 << 30),
                gpu: 1,
            },
            hostname: "h".into(),
            input_artifacts: vec![e::InputArtifact {
                name: "d".into(),
                path: "/in/d".into(),
                uri: "file:///a/d".into(),
                producer: "p".into(),
                metadata: Some(serde_json::json!({"rows": 3})),
                digest: Some(format!("blake3:{}", "0".repeat(64))),
                size: Some(7),
            }],
            output_params: vec![e::OutputParam {
                name: "n".into(),
                ty: sluice_spec::ParamType::Int,
                path: "/out/n".into(),
            }],
            output_artifacts: vec![e::OutputArtifact {
                name: "m".into(),
                path: "/out/m".into(),
                kind: Some("system.Metrics".into()),
            }],
            network: Some(sluice_spec::NetworkMode::Host),
            daemon: Some(sluice_spec::Daemon { port: Some(8080) }),
            volumes: vec![e::VolumeMount {
                name: Some("v".into()),
                host_path: None,
                path: "/v".into(),
                writable: true,
            }],
            timeout_ms: Some(5),
            seccomp_unconfined: true,
            node_selector: [("gpu".to_string(), "a100".to_string())].into(),
            secrets: vec![e::SecretUse {
                name: "hf".into(),
                env: Some("HF_TOKEN".into()),
                path: None,
                version: Some(2),
            }],
            kfp: Some(sluice_spec::kfp::Task {
                launch: sluice_spec::kfp::Launch {
                    command: vec!["sh".into()],
                    args: vec!["{{$}}".into()],
                    inputs: vec![],
                    outputs: vec![],
                    importer: None,
                },
                values: [("n".to_string(), serde_json::json!(3))].into(),
                job_name: "r".into(),
                job_id: "id".into(),
                task_name: "t".into(),
                task_id: "id.t.1".into(),
            }),
        };
        // Both sides serialize alike: what the store keeps and what the worker is sent agree.
        let wire = serde_json::to_value(task_spec(spec.clone())).unwrap();
        let mut stored = serde_json::to_value(&spec).unwrap();
        // Which workers may take the task is the scheduler's business: not sent to the worker.
        let selector = stored.as_object_mut().unwrap().remove("node_selector");
        assert_eq!(selector, Some(serde_json::json!({"gpu": "a100"})));
        assert_eq!(wire, stored);
    }
}
