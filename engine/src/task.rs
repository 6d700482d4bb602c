//! What the engine hands out and takes back for one task: a resolved launch (every placeholder
//! filled) and an attempt's result. These are the engine's own types; the API's wire types mirror
//! them and the server converts at its edge, so that either can change without the other. They are
//! serde types because the store keeps a task's launch as JSON.

use serde::{Deserialize, Serialize};
use sluice_spec::ids::RunId;
use sluice_spec::state::Outcome;
use sluice_spec::{NetworkMode, ParamType};
use std::collections::BTreeMap;

/// A task as a worker must run it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TaskSpec {
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub command: Option<Vec<String>>,
    /// Replaces the image's cmd when set.
    pub args: Option<Vec<String>>,
    pub env: Vec<EnvVar>,
    pub working_dir: Option<String>,
    /// Written to `/sluice/script` before the container starts.
    pub script: Option<String>,
    pub resources: ResourceRequest,
    pub hostname: String,
    pub input_artifacts: Vec<InputArtifact>,
    pub output_params: Vec<OutputParam>,
    pub output_artifacts: Vec<OutputArtifact>,
    /// Which network the container gets; unset, the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// The task serves (a daemon step): its worker reports when it is up, and stops it when
    /// told to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<sluice_spec::Daemon>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Kill the container and fail the attempt after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run without the default seccomp profile (the worker must allow it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seccomp_unconfined: bool,
    /// Secrets the step receives (by name: their values travel only in the lease).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretUse>,
    /// The labels a worker must offer to be given the task (`nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// A step imported from a Kubeflow pipeline: launched as Kubeflow's launcher launches it
    /// (`command` and `args` are then unset: the worker fills them from this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kfp: Option<sluice_spec::kfp::Task>,
}

/// A secret a step receives, as an environment variable or a read-only file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretUse {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The version leased (set by the scheduler when it leases the task): cache keys name it,
    /// never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ResourceRequest {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    pub gpu: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMount {
    pub name: Option<String>,
    pub host_path: Option<String>,
    pub path: String,
    pub writable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputArtifact {
    pub name: String,
    /// Where the step sees it (read-only).
    pub path: String,
    /// Where the producer left it.
    pub uri: String,
    pub producer: String,
    /// What its producer said of it (a Kubeflow artifact's metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<sluice_spec::Value>,
    /// Its content's digest and size as its producer recorded them: a copy fetched from an
    /// object store is checked against them (none for records that predate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputParam {
    pub name: String,
    pub ty: ParamType,
    /// The file the step writes the value to.
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputArtifact {
    pub name: String,
    pub path: String,
    /// What it holds, as the step declares it (`dataset`, `system.Metrics`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An artifact a task produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArtifactRecord {
    pub name: String,
    /// Where its bytes are (an [`sluice_spec::uri::ArtifactUri`] as text).
    pub uri: String,
    pub size: u64,
    /// Its content's digest, `blake3:HEX` (`sha256:HEX` for what was kept before).
    #[serde(
        alias = "sha256",
        deserialize_with = "sluice_spec::digest::deserialize"
    )]
    pub digest: String,
    /// What the step said of it (a Kubeflow artifact's metadata: metrics, schema, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<sluice_spec::Value>,
    /// What it holds, as its step declared it (`dataset`, `system.Metrics`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// How an attempt ended, as its worker reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Output parameters as the step wrote them (text; checked against their types).
    pub outputs: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactRecord>,
    /// The result was reused from this run's same task (no container ran).
    pub cached_from: Option<RunId>,
}
