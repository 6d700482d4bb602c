//! Importers: every pipeline format other than sluice's own YAML becomes the one model in this
//! crate here, so that the engine, the store and the worker know one model only. The format is
//! recognised from the document, never from the file's name.

pub(crate) mod kfp;

use crate::yaml::{Kind, Node};

/// The formats a pipeline file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// sluice's own YAML (`apiVersion: sluice/v1`).
    Sluice,
    /// A Kubeflow Pipelines v2 `PipelineSpec`, as `kfp.compiler` writes it.
    Kfp,
    /// A Kubeflow Pipelines v1 file: an Argo Workflow compiled by kfp 1.x.
    KfpV1,
}

/// What format a parsed document is in: a mapping with the PipelineSpec's own top-level fields
/// (`pipelineInfo`, `root`, `deploymentSpec`, `components`) is Kubeflow's; an Argo Workflow is
/// kfp 1.x's; anything else is read as sluice's own.
pub fn format_of(doc: &Node) -> Format {
    let Kind::Map(entries) = &doc.kind else {
        return Format::Sluice;
    };
    let has = |k: &str| entries.iter().any(|(key, _)| key.name == k);
    let text = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .and_then(|(_, v)| v.scalar_text())
    };
    if has("pipelineInfo") && (has("root") || has("deploymentSpec") || has("components")) {
        Format::Kfp
    } else if text("kind").as_deref() == Some("Workflow")
        && text("apiVersion").is_some_and(|v| v.starts_with("argoproj.io/"))
    {
        Format::KfpV1
    } else {
        Format::Sluice
    }
}
