//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format: what happened
//! (counters and histograms the scheduler feeds as workers report) and what is (gauges read
//! from the scheduler and the store when scraped). Labels are states and outcomes only, never
//! run or pipeline names, so the number of series stays fixed.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct Metrics {
    registry: Registry,
    runs_created: Counter,
    attempts: Family<Labels, Counter>,
    lease_expiries: Counter,
    start_latency: Histogram,
    durations: HistogramFamily,
    artifact_bytes: Counter,
    runs: Family<Labels, Gauge>,
    tasks: Family<Labels, Gauge>,
    ready: Gauge,
    leases: Gauge,
    workers: Family<Labels, Gauge>,
}

/// What is, as the scheduler and the store see it when scraped.
#[derive(Debug, Default)]
pub struct Now {
    /// Every run the store holds, by state.
    pub runs: Vec<(&'static str, u64)>,
    /// The tasks of the runs that have not ended, by state.
    pub tasks: Vec<(&'static str, u64)>,
    /// Tasks ready and waiting for a worker.
    pub ready: u64,
    pub leases: u64,
    pub workers_up: u64,
    pub workers_gone: u64,
}

fn seconds() -> Histogram {
    // 5 ms to about 11 hours.
    Histogram::new(exponential_buckets(0.005, 3.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            runs_created: Counter::default(),
            attempts: Family::default(),
            lease_expiries: Counter::default(),
            start_latency: seconds(),
            durations: Family::new_with_constructor(seconds),
            artifact_bytes: Counter::default(),
            runs: Family::default(),
            tasks: Family::default(),
            ready: Gauge::default(),
            leases: Gauge::default(),
            workers: Family::default(),
            registry: Registry::default(),
        };
        registry.register("runs_created", "Runs submitted", m.runs_created.clone());
        registry.register(
            "task_attempts",
            "Attempts of tasks that ended, by outcome (as their workers reported them)",
            m.attempts.clone(),
        );
        registry.register(
            "lease_expiries",
            "Leases taken back because their worker stopped renewing them",
            m.lease_expiries.clone(),
        );
        registry.register(
            "step_start_latency_seconds",
            "From a task being ready to its container running",
            m.start_latency.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "From a task's container starting to its end, by outcome",
            m.durations.clone(),
        );
        registry.register(
            "artifact_bytes",
            "Bytes of output artifacts workers recorded",
            m.artifact_bytes.clone(),
        );
        registry.register("runs", "Runs kept, by state", m.runs.clone());
        registry.register(
            "active_tasks",
            "Tasks of the runs that have not ended, by state",
            m.tasks.clone(),
        );
        registry.register(
            "queue_depth",
            "Tasks ready and waiting for a worker",
            m.ready.clone(),
        );
        registry.register("leases", "Leases held by workers", m.leases.clone());
        registry.register(
            "workers",
            "Registered workers, by whether they are up",
            m.workers.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn run_created(&self) {
        self.runs_created.inc();
    }

    pub fn lease_expired(&self) {
        self.lease_expiries.inc();
    }

    /// A task's container started `latency_ms` after the task became ready.
    pub fn step_started(&self, latency_ms: i64) {
        self.start_latency
            .observe(latency_ms.max(0) as f64 / 1000.0);
    }

    /// An attempt ended with `outcome` after running `ran_ms` (none when it never started), its
    /// output artifacts `bytes` long.
    pub fn attempt_ended(&self, outcome: &'static str, ran_ms: Option<i64>, bytes: u64) {
        self.attempts
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
        if let Some(ms) = ran_ms {
            self.durations
                .get_or_create(&vec![("outcome", outcome)])
                .observe(ms.max(0) as f64 / 1000.0);
        }
        self.artifact_bytes.inc_by(bytes);
    }

    /// The metrics as Prometheus scrapes them, with `now`'s gauges.
    pub fn render(&self, now: &Now) -> String {
        for (state, n) in &now.runs {
            self.runs
                .get_or_create(&vec![("state", *state)])
                .set(*n as i64);
        }
        for (state, n) in &now.tasks {
            self.tasks
                .get_or_create(&vec![("state", *state)])
                .set(*n as i64);
        }
        self.ready.set(now.ready as i64);
        self.leases.set(now.leases as i64);
        for (state, n) in [("up", now.workers_up), ("gone", now.workers_gone)] {
            self.workers
                .get_or_create(&vec![("state", state)])
                .set(n as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
