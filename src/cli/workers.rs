//! `sluice workers`: the workers a server knows, what they offer and what they run.

use super::{print_json, Conn, Output};
use clap::Subcommand;
use sluice_sdk::api::WorkerInfo;

#[derive(Subcommand)]
pub enum WorkersCmd {
    /// List the workers heard from within the lease time: capacity, GPUs, labels, running
    /// tasks and last heartbeat (`--all` adds those that stopped).
    List {
        #[command(flatten)]
        conn: Conn,
        /// Also list workers that are gone.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn workers(cmd: WorkersCmd) -> anyhow::Result<u8> {
    match cmd {
        WorkersCmd::List { conn, all, output } => {
            let mut list = conn.client().list_workers().await?;
            list.retain(|w| all || w.alive);
            match output {
                Output::Json => print_json(&list),
                Output::Text => print_table(&list),
            }
        }
    }
    Ok(0)
}

fn print_table(list: &[WorkerInfo]) {
    println!(
        "{:<20}  {:<8}  {:<5}  {:<5}  {:<5}  {:<24}  {:<30}  TASKS",
        "NAME", "ID", "STATE", "SLOTS", "GPUS", "LAST SEEN", "LABELS"
    );
    for w in list {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let tasks: Vec<String> = w
            .tasks
            .iter()
            .map(|t| format!("{}/{}", t.run_name, t.task))
            .collect();
        println!(
            "{:<20}  {:<8}  {:<5}  {:<5}  {:<5}  {:<24}  {:<30}  {}",
            w.name,
            w.id.get(w.id.len().saturating_sub(8)..).unwrap_or(&w.id),
            if w.alive { "up" } else { "gone" },
            format!("{}/{}", w.active_leases, w.capacity),
            format!("{}/{}", w.gpus_in_use, w.gpus),
            w.last_seen_at,
            if labels.is_empty() {
                "-".to_string()
            } else {
                labels.join(",")
            },
            if tasks.is_empty() {
                "-".to_string()
            } else {
                tasks.join(" ")
            },
        );
    }
}
