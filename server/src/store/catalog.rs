//! Experiments, schedules and the housekeeping of pipelines (version names, deletion): what runs
//! are grouped under and fired by. Their SQL is written once (`catalog_sql.rs`), and each
//! backend instantiates it with its own placeholder style and writer.

use super::Result;
use async_trait::async_trait;
use sluice_sdk::api::{Labels, Params};

/// An experiment's row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub archived: bool,
}

/// A schedule's row: what it runs, when, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub experiment_id: String,
    /// What it runs: the latest version of a pipeline at each firing, one version, or a file.
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub digest: Option<String>,
    pub params: Params,
    pub labels: Labels,
    /// A cron expression (five fields, or six with seconds first) in `timezone` (UTC if none),
    /// or an interval in seconds.
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub interval_s: Option<i64>,
    /// It fires for due times in [start_at, end_at] only.
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    /// After time down or at its concurrency limit: fire every due time missed (true), or only
    /// the latest.
    pub catchup: bool,
    pub max_concurrency: u32,
    pub enabled: bool,
    pub cache: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The due time of its last firing, and of its next (none when it has ended).
    pub last_fired_at: Option<i64>,
    pub next_at: Option<i64>,
    /// Due times before it are passed over: it was paused until then.
    pub resumed_at: Option<i64>,
    /// Why its last due time could not start a run.
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScheduleCols {
    id: String,
    name: String,
    description: Option<String>,
    experiment_id: String,
    pipeline_id: Option<String>,
    pipeline_version_id: Option<String>,
    digest: Option<String>,
    params: String,
    labels: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
    interval_s: Option<i64>,
    start_at: Option<i64>,
    end_at: Option<i64>,
    catchup: bool,
    max_concurrency: i64,
    enabled: bool,
    cache: bool,
    created_at: i64,
    updated_at: i64,
    last_fired_at: Option<i64>,
    next_at: Option<i64>,
    resumed_at: Option<i64>,
    last_error: Option<String>,
}

impl ScheduleCols {
    pub(crate) fn row(self) -> Result<ScheduleRow> {
        use super::cols::{corrupt, from_json};
        Ok(ScheduleRow {
            params: from_json(Some(self.params), "schedule params")?.unwrap_or_default(),
            labels: from_json(self.labels, "schedule labels")?.unwrap_or_default(),
            max_concurrency: u32::try_from(self.max_concurrency)
                .map_err(|_| corrupt("schedule max_concurrency", self.max_concurrency))?,
            id: self.id,
            name: self.name,
            description: self.description,
            experiment_id: self.experiment_id,
            pipeline_id: self.pipeline_id,
            pipeline_version_id: self.pipeline_version_id,
            digest: self.digest,
            cron: self.cron,
            timezone: self.timezone,
            interval_s: self.interval_s,
            start_at: self.start_at,
            end_at: self.end_at,
            catchup: self.catchup,
            enabled: self.enabled,
            cache: self.cache,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_fired_at: self.last_fired_at,
            next_at: self.next_at,
            resumed_at: self.resumed_at,
            last_error: self.last_error,
        })
    }
}

/// A webhook: deliveries to `/api/v1/hooks/NAME` verified with the secret `secret` start runs
/// of `pipeline`.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRow {
    pub name: String,
    /// A stored pipeline's name (its latest version at each delivery).
    pub pipeline: String,
    /// `github` (`X-Hub-Signature-256`) or `gitlab` (`X-Gitlab-Token`).
    pub kind: String,
    /// The sluice secret its deliveries are verified with.
    pub secret: String,
    /// Parameters and labels of the run, each from a path into the payload (`after`,
    /// `head_commit.id`).
    pub params: std::collections::BTreeMap<String, String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The events it starts runs for (`push`); others are acknowledged and start nothing.
    pub events: Vec<String>,
    pub experiment_id: String,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct HookCols {
    name: String,
    pipeline: String,
    kind: String,
    secret: String,
    params: String,
    labels: String,
    events: String,
    experiment_id: String,
    created_at: i64,
}

impl HookCols {
    pub(crate) fn row(self) -> Result<HookRow> {
        use super::cols::from_json;
        Ok(HookRow {
            params: from_json(Some(self.params), "hook params")?.unwrap_or_default(),
            labels: from_json(Some(self.labels), "hook labels")?.unwrap_or_default(),
            events: from_json(Some(self.events), "hook events")?.unwrap_or_default(),
            name: self.name,
            pipeline: self.pipeline,
            kind: self.kind,
            secret: self.secret,
            experiment_id: self.experiment_id,
            created_at: self.created_at,
        })
    }
}

/// How many runs and schedules an experiment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holds {
    pub runs: u64,
    pub schedules: u64,
}

/// Experiments, schedules, and pipelines' names and deletion.
#[async_trait]
pub trait CatalogStore {
    /// Keeps a new experiment. Returns false, keeping nothing, when its name is taken.
    async fn create_experiment(&self, e: &ExperimentRow) -> Result<bool>;
    /// Experiments, oldest first; `Some(a)`: only those (not) archived.
    async fn list_experiments(&self, archived: Option<bool>) -> Result<Vec<ExperimentRow>>;
    /// An experiment by id, or else by name.
    async fn get_experiment(&self, id_or_name: &str) -> Result<Option<ExperimentRow>>;
    /// Archives an experiment with its runs, and pauses its schedules (or brings the
    /// experiment back, its runs staying archived). Returns whether there was one.
    async fn set_experiment_archived(&self, id: &str, archived: bool) -> Result<bool>;
    async fn experiment_holds(&self, id: &str) -> Result<Holds>;
    /// Forgets an experiment that holds nothing. Returns whether there was one.
    async fn delete_experiment(&self, id: &str) -> Result<bool>;

    /// Keeps a new schedule, with the pipeline file it runs when it was given inline
    /// (`(digest, yaml)`).
    async fn create_schedule(&self, s: &ScheduleRow, source: Option<(&str, &str)>) -> Result<()>;
    /// Schedules, oldest first; with `experiment`, that experiment's only.
    async fn list_schedules(&self, experiment: Option<&str>) -> Result<Vec<ScheduleRow>>;
    /// A schedule by id, or else by its name (an error when several have it).
    async fn get_schedule(&self, id_or_name: &str) -> Result<Option<ScheduleRow>>;
    /// Pauses or resumes a schedule, with its next due time; a resumed one passes over the
    /// due times before `now`. Returns whether there was one.
    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_at: Option<i64>,
        now: i64,
    ) -> Result<bool>;
    /// Keeps why a due time could not start a run, and moves on to the next.
    async fn schedule_failed(
        &self,
        id: &str,
        at: i64,
        next_at: Option<i64>,
        error: &str,
    ) -> Result<()>;
    /// Moves an enabled schedule on to its next due time (a paused one stays as it is).
    async fn set_next_due(&self, id: &str, next_at: Option<i64>) -> Result<()>;
    async fn delete_schedule(&self, id: &str) -> Result<bool>;
    /// The enabled schedules due at `now`.
    async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRow>>;

    /// Names a pipeline version (Kubeflow's client names each).
    async fn set_version_name(&self, version_id: &str, name: &str) -> Result<()>;
    /// A pipeline version's name, if it was given one.
    async fn version_name(&self, version_id: &str) -> Result<Option<String>>;
    /// Forgets a pipeline version; runs of it keep their pipeline file. Returns whether there
    /// was one.
    async fn delete_version(&self, version_id: &str) -> Result<bool>;
    /// Forgets a pipeline that has no versions left. Returns whether there was one.
    async fn delete_pipeline(&self, pipeline_id: &str) -> Result<bool>;
    /// Keeps a new webhook. Returns false, keeping nothing, when its name is taken.
    async fn create_hook(&self, h: &HookRow) -> Result<bool>;
    async fn list_hooks(&self) -> Result<Vec<HookRow>>;
    async fn get_hook(&self, name: &str) -> Result<Option<HookRow>>;
    /// Forgets a webhook and its deliveries. Returns whether there was one.
    async fn delete_hook(&self, name: &str) -> Result<bool>;
    /// The run a delivery started, if it was seen before.
    async fn hook_delivery(&self, hook: &str, delivery: &str) -> Result<Option<String>>;
    /// Keeps the run a delivery started (the first one kept stays).
    async fn record_delivery(
        &self,
        hook: &str,
        delivery: &str,
        run_id: &str,
        at: i64,
    ) -> Result<()>;

    /// How many schedules run this pipeline or this version of it.
    async fn schedules_using(&self, pipeline_id: &str, version_id: Option<&str>) -> Result<u64>;
}
