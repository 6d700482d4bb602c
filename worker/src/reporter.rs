//! Ships what tasks report (starts, log lines, results) to the server in batches. Under load the
//! batches grow by themselves: everything queued while one request is in flight goes in the next.
//! A batch that fails to send is sent again (the server stores each event once).

use sluice_sdk::api::ReportEvent;
use sluice_sdk::client::Client;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const MAX_BATCH: usize = 5000;

#[derive(Clone)]
pub struct Reporter(mpsc::UnboundedSender<ReportEvent>);

impl Reporter {
    pub fn send(&self, ev: ReportEvent) {
        let _ = self.0.send(ev);
    }
}

/// Starts the shipping loop. It ends once every `Reporter` is dropped and the queue is sent.
/// Leases the server says this worker no longer holds are passed to `lost`.
pub fn spawn(
    client: Client,
    worker_id: Arc<RwLock<String>>,
    lost: mpsc::UnboundedSender<String>,
) -> (Reporter, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<ReportEvent>();
    let handle = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ev) => push(&mut batch, ev),
                    Err(_) => break,
                }
            }
            let mut backoff = Duration::from_millis(100);
            loop {
                let id = worker_id.read().map(|g| g.clone()).unwrap_or_default();
                match client.report(&id, batch.clone()).await {
                    Ok(resp) => {
                        for l in resp.lost {
                            let _ = lost.send(l);
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, events = batch.len(), "reporting to the server failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    });
    (Reporter(tx), handle)
}

/// Appends an event, folding log lines into the previous event when it is the same lease's log.
fn push(batch: &mut Vec<ReportEvent>, ev: ReportEvent) {
    if let (
        Some(ReportEvent::Log {
            lease_id: prev,
            lines,
        }),
        ReportEvent::Log {
            lease_id,
            lines: more,
        },
    ) = (batch.last_mut(), &ev)
    {
        if prev == lease_id {
            lines.extend(more.iter().cloned());
            return;
        }
    }
    batch.push(ev);
}
