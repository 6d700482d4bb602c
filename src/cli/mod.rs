//! Command-line definitions and dispatch.

mod access;
mod backup;
mod bench;
mod ci;
mod gates;
mod hooks;
mod image;
mod pipelines;
mod runs;
mod schedules;
mod serve;
mod workers;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_sdk::client::{Client, ClientError};
use std::path::PathBuf;

/// Exit codes: 0 success; 1 a run failed or was cancelled, or a command failed; 2 invalid input;
/// 3 the server could not be reached.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8686";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Machine-learning pipelines in real containers: one binary, a server, workers and a CLI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Log filter for sluice's own diagnostics on stderr (e.g. `info`, `sluice_server=debug`).
    #[arg(long, global = true, env = "SLUICE_LOG")]
    pub log: Option<String>,
    /// How those diagnostics are written: `text` for people, `json` (one object a line, with
    /// its span's fields) for log collectors.
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct Conn {
    /// The sluice server's URL.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8686")]
    pub server: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also trust the certificates in this PEM file (a server with its own certificate
    /// authority).
    #[arg(long, env = "SLUICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl Conn {
    /// A client for the server; a CA file that does not read is said, and the default trust
    /// used (the server's answer then says what is wrong).
    pub fn client(&self) -> Client {
        match Client::trusting(&self.server, self.token.clone(), self.ca_cert.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warning: --ca-cert {e}");
                Client::new(&self.server, self.token.clone())
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Start a server and a worker in one process (SQLite under the data directory).
    Up(Box<serve::UpArgs>),
    /// Start the server alone.
    Server(serve::ServerArgs),
    /// Start a worker that leases tasks from a server.
    Worker(serve::WorkerArgs),
    /// Check pipeline files; print every problem with its line and column (exit 2 if any).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Start a run of a pipeline file (or of a stored pipeline with --pipeline).
    Submit(runs::SubmitArgs),
    /// List, inspect and cancel runs.
    Runs {
        #[command(subcommand)]
        cmd: runs::RunsCmd,
    },
    /// Print a run's logs (one task's, or every task's), optionally following them live.
    Logs(runs::LogsArgs),
    /// Upload pipeline files as versions, list pipelines and their versions.
    Pipelines {
        #[command(subcommand)]
        cmd: pipelines::PipelinesCmd,
    },
    /// Make, list, archive and delete experiments (what runs are grouped under).
    Experiments {
        #[command(subcommand)]
        cmd: schedules::ExperimentsCmd,
    },
    /// Recurring runs: make (cron in a time zone, or an interval), list, pause, resume, delete.
    Schedules {
        #[command(subcommand)]
        cmd: schedules::SchedulesCmd,
    },
    /// Webhooks from GitHub or GitLab that start runs: make, list, delete.
    Hooks {
        #[command(subcommand)]
        cmd: hooks::HooksCmd,
    },
    /// Make, list and revoke API tokens (roles: admin, submit, read, worker).
    Tokens {
        #[command(subcommand)]
        cmd: access::TokensCmd,
    },
    /// Set, list and delete the secrets steps use (values never come back out).
    Secrets {
        #[command(subcommand)]
        cmd: access::SecretsCmd,
    },
    /// The workers the server knows: capacity, GPUs, labels, running tasks, last heartbeat.
    Workers {
        #[command(subcommand)]
        cmd: workers::WorkersCmd,
    },
    /// Manage the local image store (load, import, list, remove, prune).
    Image {
        #[command(subcommand)]
        cmd: image::ImageCmd,
    },
    /// Copy a server's database and secrets key into a new directory, while it runs (SQLite's
    /// online backup; for PostgreSQL use `pg_dump`).
    Backup(backup::BackupArgs),
    /// Measure sluice against its targets.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

pub fn init_tracing(cli: &Cli) {
    let default = match cli.cmd {
        // sqlx's own chatter (PostgreSQL's notices) only when it matters.
        Cmd::Up(_) | Cmd::Server(_) | Cmd::Worker(_) => "info,sqlx=warn",
        _ => "warn",
    };
    let filter = cli.log.clone().unwrap_or_else(|| default.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Text => fmt.try_init(),
        LogFormat::Json => fmt.json().with_current_span(true).try_init(),
    };
}

pub async fn dispatch(cli: Cli) -> u8 {
    let result = match cli.cmd {
        Cmd::Up(a) => serve::up(*a).await,
        Cmd::Server(a) => serve::server(a).await,
        Cmd::Worker(a) => serve::worker(a).await,
        Cmd::Validate { files } => return pipelines::validate(&files),
        Cmd::Submit(a) => runs::submit(a).await,
        Cmd::Runs { cmd } => runs::runs(cmd).await,
        Cmd::Logs(a) => runs::logs(a).await,
        Cmd::Pipelines { cmd } => pipelines::pipelines(cmd).await,
        Cmd::Tokens { cmd } => access::tokens(cmd).await,
        Cmd::Secrets { cmd } => access::secrets(cmd).await,
        Cmd::Workers { cmd } => workers::workers(cmd).await,
        Cmd::Experiments { cmd } => schedules::experiments(cmd).await,
        Cmd::Hooks { cmd } => hooks::hooks(cmd).await,
        Cmd::Schedules { cmd } => schedules::schedules(cmd).await,
        Cmd::Image { cmd } => image::image(cmd).await,
        Cmd::Backup(a) => backup::backup(a).await,
        Cmd::Bench { cmd } => bench::bench(cmd).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code_of(&e)
        }
    }
}

/// Maps an error to the exit code a script can act on.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Unreachable { .. }) => EXIT_UNREACHABLE,
        Some(ClientError::Api { status, .. }) if (400..500).contains(status) => EXIT_INVALID,
        // A file the caller named that cannot be read.
        Some(ClientError::Local(_)) => EXIT_INVALID,
        _ => EXIT_FAILED,
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Registries (host:port) reached over plain HTTP besides loopback ones.
#[derive(Args, Clone, Default)]
pub struct Insecure {
    /// Registries (host:port) to reach over plain HTTP besides loopback ones.
    #[arg(
        long = "insecure-registry",
        env = "SLUICE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub registries: Vec<String>,
    /// Pull images named on a registry from a mirror first, REGISTRY=URL (such as
    /// docker.io=http://127.0.0.1:5000), as containerd's hosts.toml and Docker's
    /// registry-mirrors do; images keep their own names.
    #[arg(
        long = "registry-mirror",
        env = "SLUICE_REGISTRY_MIRRORS",
        value_delimiter = ','
    )]
    pub mirrors: Vec<sluice_worker::images::registry::Mirror>,
}
