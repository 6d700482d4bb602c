//! Experiments and schedules.

use super::{enc, Client, Result};
use crate::api::{
    CreateExperiment, CreateSchedule, Experiment, ExperimentList, Schedule, ScheduleList,
};

impl Client {
    pub async fn create_experiment(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<Experiment> {
        self.post(
            "/experiments",
            &CreateExperiment {
                name: name.to_string(),
                description: description.map(str::to_string),
            },
        )
        .await
    }

    pub async fn list_experiments(&self) -> Result<ExperimentList> {
        self.get("/experiments").await
    }

    pub async fn get_experiment(&self, id_or_name: &str) -> Result<Experiment> {
        self.get(&format!("/experiments/{}", enc(id_or_name))).await
    }

    /// Archives an experiment with its runs and pauses its schedules (or, with `false`, brings
    /// it back).
    pub async fn archive_experiment(&self, id_or_name: &str, archived: bool) -> Result<Experiment> {
        let verb = if archived { "archive" } else { "unarchive" };
        self.post(
            &format!("/experiments/{}/{verb}", enc(id_or_name)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn delete_experiment(&self, id_or_name: &str) -> Result<()> {
        let path = format!("/experiments/{}", enc(id_or_name));
        self.answered(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(|_| ())
    }

    pub async fn create_schedule(&self, req: &CreateSchedule) -> Result<Schedule> {
        self.post("/schedules", req).await
    }

    pub async fn list_schedules(&self, experiment: Option<&str>) -> Result<ScheduleList> {
        let mut req = self.req(reqwest::Method::GET, "/schedules");
        if let Some(e) = experiment {
            req = req.query(&[("experiment", e)]);
        }
        self.send(req).await
    }

    pub async fn get_schedule(&self, id_or_name: &str) -> Result<Schedule> {
        self.get(&format!("/schedules/{}", enc(id_or_name))).await
    }

    /// Pauses a schedule (or, with `true`, resumes it from now on).
    pub async fn set_schedule_enabled(&self, id_or_name: &str, enabled: bool) -> Result<Schedule> {
        let verb = if enabled { "resume" } else { "pause" };
        self.post(
            &format!("/schedules/{}/{verb}", enc(id_or_name)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn delete_schedule(&self, id_or_name: &str) -> Result<()> {
        let path = format!("/schedules/{}", enc(id_or_name));
        self.answered(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(|_| ())
    }
}

impl Client {
    pub async fn create_hook(&self, req: &crate::api::CreateHook) -> Result<crate::api::Hook> {
        self.post("/hooks", req).await
    }

    pub async fn list_hooks(&self) -> Result<crate::api::HookList> {
        self.get("/hooks").await
    }

    pub async fn delete_hook(&self, name: &str) -> Result<()> {
        let path = format!("/hooks/{}", enc(name));
        self.answered(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(|_| ())
    }
}
