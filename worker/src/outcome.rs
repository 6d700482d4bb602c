//! What an attempt's end means for its task: the outputs it left when it exited 0 (read and
//! hashed here, off the async threads), or why it failed, was stopped or was cancelled.

use crate::outputs;
use crate::runtime::{Exit, StopReason};
use sluice_sdk::api::{Outcome, TaskResult, TaskSpec};
use std::path::Path;

/// What an attempt's exit means: its outputs read when it exited 0, or why it failed. Blocking.
pub(crate) fn result_of(
    exit: Exit,
    spec: &TaskSpec,
    params: &Path,
    artifacts: &Path,
) -> Option<TaskResult> {
    match exit {
        Exit {
            stopped: Some(why),
            code,
            ..
        } => stopped(Some(why), spec, Some(code), ""),
        Exit {
            evicted: Some(why),
            code,
            ..
        } => Some(TaskResult::ended(Outcome::Failed, Some(code), why)),
        Exit {
            oom_killed: true,
            code,
            ..
        } => {
            let limit = spec
                .resources
                .memory_bytes
                .map(|b| format!(" of {} MiB", b >> 20))
                .unwrap_or_default();
            Some(TaskResult::ended(
                Outcome::Failed,
                Some(code),
                format!("out of memory: killed for exceeding its memory limit{limit}"),
            ))
        }
        Exit { code, .. } if code != 0 => Some(TaskResult::ended(
            Outcome::Failed,
            Some(code),
            format!("exited with code {code}"),
        )),
        Exit { code, .. } => {
            let read = || {
                let mut values = outputs::params(spec, params)?;
                let metadata = crate::kfp::outputs(spec, params, artifacts, &mut values)?;
                let mut records = outputs::artifacts(spec, artifacts)?;
                crate::kfp::annotate(&mut records, metadata);
                Ok::<_, String>((values, records))
            };
            let t = std::time::Instant::now();
            let got = read();
            tracing::debug!(
                ms = t.elapsed().as_secs_f64() * 1e3,
                "outputs read and hashed"
            );
            Some(match got {
                Ok((outputs, artifacts)) => TaskResult::succeeded(code, outputs, artifacts),
                Err(e) => TaskResult::failed(e),
            })
        }
    }
}

/// The result of an attempt stopped on request (`None`: not reported, as with a lost lease):
/// its container's, when `code` is given, or `during` something before it started.
pub(crate) fn stopped(
    why: Option<StopReason>,
    spec: &TaskSpec,
    code: Option<i32>,
    during: &str,
) -> Option<TaskResult> {
    let (outcome, error) = match why? {
        StopReason::LeaseLost | StopReason::Shutdown => return None,
        StopReason::Timeout => (
            Outcome::Failed,
            format!(
                "timed out after {}s{}",
                spec.timeout_ms.unwrap_or(0) as f64 / 1000.0,
                if code.is_some() {
                    " and was killed"
                } else {
                    during
                }
            ),
        ),
        StopReason::Cancelled => (Outcome::Cancelled, format!("cancelled{during}")),
    };
    Some(TaskResult::ended(outcome, code, error))
}
