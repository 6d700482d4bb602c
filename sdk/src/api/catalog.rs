//! Experiments (what runs are grouped under) and schedules (recurring runs), as the API shows
//! and takes them.

use super::{Labels, Params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentList {
    pub experiments: Vec<Experiment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A recurring run: what it runs, when, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub experiment_id: String,
    /// The pipeline it runs (its latest version at each firing unless `version` is set), or
    /// none when it runs a file given inline (`digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub params: Params,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// A cron expression (`MIN HOUR DOM MON DOW`, or with seconds first) in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Or an interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Whether due times missed (the server down, the concurrency limit reached) each fire
    /// later, or only the latest.
    pub catchup: bool,
    pub max_concurrency: u32,
    pub enabled: bool,
    pub cache: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The due time of its last firing, and of its next (none once it has ended or while it
    /// is paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    /// Why its last due time started no run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

/// A new schedule: `pipeline` (a stored pipeline, by name or id; with `version`, that version,
/// else its latest at each firing) or `yaml` (a file), and `cron` or `interval_seconds`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Catch up on due times missed (the default), or fire only the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup: Option<bool>,
    /// Runs of it at once, at most (1 if not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Made paused with `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// A webhook: deliveries to `/api/v1/hooks/NAME`, verified as their sender signs them, start
/// runs of a stored pipeline with parameters and labels from their payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hook {
    pub name: String,
    pub pipeline: String,
    /// `github` (verified by `X-Hub-Signature-256`) or `gitlab` (by `X-Gitlab-Token`).
    pub kind: String,
    /// The sluice secret deliveries are verified with.
    pub secret: String,
    /// Run parameters and labels, each from a path into the payload (`after`,
    /// `head_commit.id`, `$branch`).
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The events that start runs (`push`); others are acknowledged and start nothing.
    pub events: Vec<String>,
    pub experiment_id: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookList {
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHook {
    pub name: String,
    pub pipeline: String,
    pub kind: String,
    pub secret: String,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `["push"]` if none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
}

/// What a delivery did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivered {
    /// The run it started (or, delivered before, the run the first delivery started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// It was delivered before: nothing new started.
    #[serde(default)]
    pub duplicate: bool,
    /// Why it started nothing (an event the hook does not run for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}
