//! `sluice experiments` (what runs are grouped under) and `sluice schedules` (recurring runs:
//! cron in a time zone or an interval, catch-up or not, a concurrency limit).

use super::pipelines::load_file;
use super::{print_json, Conn, Output, EXIT_INVALID};
use clap::Subcommand;
use sluice_sdk::api::{CreateSchedule, Schedule};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ExperimentsCmd {
    /// Make an experiment (runs go into it with `sluice submit --experiment NAME`).
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List experiments.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Archive an experiment with its runs, and pause its schedules.
    Archive {
        experiment: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Bring an archived experiment back.
    Unarchive {
        experiment: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Forget an experiment that holds no runs and no schedules.
    Delete {
        experiment: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn experiments(cmd: ExperimentsCmd) -> anyhow::Result<u8> {
    match cmd {
        ExperimentsCmd::Create {
            name,
            description,
            conn,
            output,
        } => {
            let e = conn
                .client()
                .create_experiment(&name, description.as_deref())
                .await?;
            match output {
                Output::Json => print_json(&e),
                Output::Text => println!("{}", e.id),
            }
        }
        ExperimentsCmd::List { conn, output } => {
            let list = conn.client().list_experiments().await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!("{:<36}  {:<28}  {:<9}  CREATED", "ID", "NAME", "STATE");
                    for e in &list.experiments {
                        let state = if e.archived { "archived" } else { "active" };
                        println!("{:<36}  {:<28}  {state:<9}  {}", e.id, e.name, e.created_at);
                    }
                }
            }
        }
        ExperimentsCmd::Archive { experiment, conn } => {
            conn.client().archive_experiment(&experiment, true).await?;
        }
        ExperimentsCmd::Unarchive { experiment, conn } => {
            conn.client().archive_experiment(&experiment, false).await?;
        }
        ExperimentsCmd::Delete { experiment, conn } => {
            conn.client().delete_experiment(&experiment).await?;
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum SchedulesCmd {
    /// Make a schedule: a pipeline file or a stored pipeline (`--pipeline`), run on a cron
    /// expression (`--cron '0 3 * * *' --timezone Europe/Berlin`) or at an interval
    /// (`--every 1h`).
    Create(Box<CreateArgs>),
    /// List schedules with their next due time.
    List {
        /// Only this experiment's (name or id).
        #[arg(long)]
        experiment: Option<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Pause a schedule.
    Pause {
        schedule: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a paused schedule from now on (the due times it was paused for are passed over).
    Resume {
        schedule: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Forget a schedule; the runs it fired stay.
    Delete {
        schedule: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The schedule's name (its runs are named after it and their due time).
    name: String,
    /// The pipeline file to run.
    #[arg(required_unless_present = "pipeline", conflicts_with = "pipeline")]
    file: Option<PathBuf>,
    /// Run a stored pipeline (by name or id): its latest version at each firing, or --version.
    #[arg(long)]
    pipeline: Option<String>,
    #[arg(long, requires = "pipeline")]
    version: Option<u32>,
    /// A cron expression: `MIN HOUR DOM MON DOW`, or with seconds first; `@daily` and the like.
    #[arg(long, required_unless_present = "every", conflicts_with = "every")]
    cron: Option<String>,
    /// The time zone the cron expression is read in (an IANA name; UTC if none).
    #[arg(long, requires = "cron")]
    timezone: Option<String>,
    /// Or an interval (`90s`, `15m`, `1h`).
    #[arg(long, value_parser = super::serve::parse_duration)]
    every: Option<std::time::Duration>,
    /// Fire only the latest due time missed (the server down, the concurrency limit reached),
    /// not every one.
    #[arg(long)]
    no_catchup: bool,
    /// Most runs of it at once.
    #[arg(long, default_value_t = 1)]
    max_concurrency: u32,
    /// The experiment its runs go into (name or id).
    #[arg(long)]
    experiment: Option<String>,
    /// A parameter value, `name=value` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A label its runs carry, `name=value` (repeatable).
    #[arg(short = 'l', long = "label", value_name = "NAME=VALUE", value_parser = super::serve::parse_label)]
    labels: Vec<(String, String)>,
    /// Fire for due times from then on, and up to then (RFC 3339).
    #[arg(long)]
    start_at: Option<String>,
    #[arg(long)]
    end_at: Option<String>,
    /// Make it paused.
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    conn: Conn,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn schedules(cmd: SchedulesCmd) -> anyhow::Result<u8> {
    match cmd {
        SchedulesCmd::Create(a) => return create(*a).await,
        SchedulesCmd::List {
            experiment,
            conn,
            output,
        } => {
            let list = conn.client().list_schedules(experiment.as_deref()).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => print_table(&list.schedules),
            }
        }
        SchedulesCmd::Pause { schedule, conn } => {
            conn.client().set_schedule_enabled(&schedule, false).await?;
        }
        SchedulesCmd::Resume { schedule, conn } => {
            let s = conn.client().set_schedule_enabled(&schedule, true).await?;
            if let Some(next) = s.next_at {
                eprintln!("schedule {} resumed; next run at {next}", s.name);
            }
        }
        SchedulesCmd::Delete { schedule, conn } => {
            conn.client().delete_schedule(&schedule).await?;
        }
    }
    Ok(0)
}

async fn create(a: CreateArgs) -> anyhow::Result<u8> {
    let params = match super::runs::parse_params(&a.params) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let (yaml, file_name) = match &a.file {
        Some(f) => match load_file(f) {
            Ok((text, _)) => (Some(text), Some(f.display().to_string())),
            Err(code) => return Ok(code),
        },
        None => (None, None),
    };
    let req = CreateSchedule {
        name: a.name,
        experiment: a.experiment,
        pipeline: a.pipeline,
        version: a.version,
        yaml,
        file_name,
        params,
        labels: a.labels.into_iter().collect(),
        cron: a.cron,
        timezone: a.timezone,
        interval_seconds: a.every.map(|d| d.as_secs().max(1)),
        start_at: a.start_at,
        end_at: a.end_at,
        catchup: Some(!a.no_catchup),
        max_concurrency: Some(a.max_concurrency),
        enabled: Some(!a.paused),
        ..Default::default()
    };
    let s = a.conn.client().create_schedule(&req).await?;
    match a.output {
        Output::Json => print_json(&s),
        Output::Text => {
            println!("{}", s.id);
            match &s.next_at {
                Some(n) => eprintln!("schedule {} made; next run at {n}", s.name),
                None => eprintln!("schedule {} made (paused)", s.name),
            }
        }
    }
    Ok(0)
}

fn print_table(list: &[Schedule]) {
    println!(
        "{:<28}  {:<24}  {:<7}  {:<24}  {:<24}  WHAT",
        "NAME", "WHEN", "STATE", "LAST", "NEXT"
    );
    for s in list {
        let when = match (&s.cron, &s.timezone, s.interval_seconds) {
            (Some(c), Some(z), _) => format!("{c} ({z})"),
            (Some(c), None, _) => c.clone(),
            (None, _, Some(i)) => format!(
                "every {}",
                humantime::format_duration(std::time::Duration::from_secs(i))
            ),
            _ => "-".into(),
        };
        let what = match (&s.pipeline, s.version) {
            (Some(p), Some(v)) => format!("{p} v{v}"),
            (Some(p), None) => format!("{p} (latest)"),
            _ => "a file".into(),
        };
        println!(
            "{:<28}  {:<24}  {:<7}  {:<24}  {:<24}  {what}",
            s.name,
            when,
            if s.enabled { "active" } else { "paused" },
            s.last_fired_at.as_deref().unwrap_or("-"),
            s.next_at.as_deref().unwrap_or("-"),
        );
        if let Some(e) = &s.last_error {
            println!("    last error: {e}");
        }
    }
}
