//! A run's scalar metrics, kept with the run when it ends so that the run list can show them as
//! columns without reading any step's files: each succeeded step's numeric output parameters
//! (`evaluate.accuracy`) and the scalars its Kubeflow metrics artifacts logged
//! (`evaluate.f1`, from `system.Metrics` metadata).

use crate::Run;
use sluice_spec::state::{Params, TaskState};

/// Most metrics kept for one run (a wide sweep's iterations would otherwise make hundreds).
pub const MAX_METRICS: usize = 64;

impl Run {
    pub fn metrics(&self) -> Params {
        let mut out = Params::new();
        for (i, t) in self.tasks.iter().enumerate() {
            if t.state != TaskState::Succeeded || t.spec.is_none() {
                continue;
            }
            let name = &self.plan.tasks[i].name;
            let numbers = t
                .outputs
                .params
                .iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, v)| (k.as_str(), v));
            let logged = t
                .outputs
                .artifacts
                .iter()
                .filter(|a| a.kind.as_deref() == Some("system.Metrics"))
                .filter_map(|a| a.metadata.as_ref()?.as_object())
                .flat_map(|m| m.iter().filter(|(_, v)| v.is_number()))
                .map(|(k, v)| (k.as_str(), v));
            for (k, v) in numbers.chain(logged) {
                if out.len() >= MAX_METRICS {
                    return out;
                }
                out.insert(format!("{name}.{k}"), v.clone());
            }
        }
        out
    }
}
