//! Importers: every pipeline format other than sluice's own YAML becomes the one model in this
//! crate here, so that the engine, the store and the worker know one model only. None is written
//! yet; each format gets a module of its own (Kubeflow's compiled `PipelineSpec` first).
