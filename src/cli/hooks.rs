//! `sluice hooks`: webhooks from GitHub or GitLab that start runs of a stored pipeline.

use super::{print_json, Conn, Output};
use clap::Subcommand;
use sluice_sdk::api::CreateHook;

/// `NAME=PATH`: a parameter or label and the payload path it comes from.
fn mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}` must be NAME=PATH (commit=after, branch=$branch)"
        )),
    }
}

#[derive(Subcommand)]
pub enum HooksCmd {
    /// Make a webhook: deliveries to `/api/v1/hooks/NAME`, verified with a sluice secret (GitHub
    /// signs with it, GitLab sends it as its token), start runs of a stored pipeline.
    Create {
        name: String,
        /// The stored pipeline it runs (its latest version at each delivery).
        #[arg(long)]
        pipeline: String,
        /// Who sends the deliveries.
        #[arg(long, value_parser = ["github", "gitlab"])]
        kind: String,
        /// The sluice secret (`sluice secrets set NAME`) deliveries are verified with.
        #[arg(long)]
        secret: String,
        /// A run parameter from the payload, `NAME=PATH` (repeatable): `commit=after`,
        /// `repo=repository.full_name`, `branch=$branch`.
        #[arg(short = 'p', long = "param", value_parser = mapping)]
        params: Vec<(String, String)>,
        /// A run label from the payload, `NAME=PATH` (repeatable).
        #[arg(short = 'l', long = "label", value_parser = mapping)]
        labels: Vec<(String, String)>,
        /// The events that start runs (repeatable; `push` if none).
        #[arg(long = "event")]
        events: Vec<String>,
        /// The experiment its runs go into.
        #[arg(long)]
        experiment: Option<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List webhooks.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Forget a webhook.
    Delete {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn hooks(cmd: HooksCmd) -> anyhow::Result<u8> {
    match cmd {
        HooksCmd::Create {
            name,
            pipeline,
            kind,
            secret,
            params,
            labels,
            events,
            experiment,
            conn,
            output,
        } => {
            let h = conn
                .client()
                .create_hook(&CreateHook {
                    name,
                    pipeline,
                    kind,
                    secret,
                    params: params.into_iter().collect(),
                    labels: labels.into_iter().collect(),
                    events: (!events.is_empty()).then_some(events),
                    experiment,
                })
                .await?;
            match output {
                Output::Json => print_json(&h),
                Output::Text => println!("{}/api/v1/hooks/{}", conn.server, h.name),
            }
        }
        HooksCmd::List { conn, output } => {
            let list = conn.client().list_hooks().await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!(
                        "{:<20}  {:<7}  {:<20}  {:<16}  PARAMETERS",
                        "NAME", "KIND", "PIPELINE", "SECRET"
                    );
                    for h in &list.hooks {
                        let p: Vec<String> =
                            h.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        println!(
                            "{:<20}  {:<7}  {:<20}  {:<16}  {}",
                            h.name,
                            h.kind,
                            h.pipeline,
                            h.secret,
                            p.join(" ")
                        );
                    }
                }
            }
        }
        HooksCmd::Delete { name, conn } => conn.client().delete_hook(&name).await?,
    }
    Ok(0)
}
