//! Experiments and schedules in a real browser: a schedule's trigger in its time zone and its
//! next due time, paused from the page; its runs one click away; the run list filtered by
//! experiment; an experiment archived from the page; Kubeflow's client's links land here.

use super::Browser;
use crate::harness::*;
use serde_json::json;
use sluice_sdk::api::{CreateRun, CreateSchedule};

async fn click(b: &Browser, selector: &str) {
    b.js(&format!(
        "const e = document.querySelector({}); if (!e) throw new Error('nothing matches'); e.click(); return true;",
        json!(selector)
    ))
    .await;
}

#[tokio::test]
async fn schedules_show_their_next_run_pause_from_the_page_and_experiments_filter_runs() {
    let env = InProcess::start().await;
    let c = &env.client;
    let step =
        "name: tick\nsteps:\n  - name: s\n    image: busybox\n    env: {FAKE_SLEEP_MS: \"100\"}\n";
    let exp = c
        .create_experiment("nightly", Some("nightly training"))
        .await
        .unwrap();
    let hourly = c
        .create_schedule(&CreateSchedule {
            name: "hourly-train".into(),
            yaml: Some(step.into()),
            cron: Some("0 * * * *".into()),
            timezone: Some("Europe/Berlin".into()),
            experiment: Some("nightly".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    c.create_schedule(&CreateSchedule {
        name: "fast".into(),
        yaml: Some(step.into()),
        interval_seconds: Some(1),
        catchup: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let mine = c
        .create_run(&CreateRun {
            yaml: Some(step.into()),
            name: Some("in-nightly".into()),
            experiment: Some("nightly".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    let b = Browser::start().await;
    b.goto(&format!("{}/schedules", env.url)).await;
    b.wait(
        "both schedules",
        "return document.querySelectorAll('#schedules tr[data-schedule]').length === 2",
    )
    .await;
    let row = b
        .js("const r = document.querySelector('tr[data-schedule=\"hourly-train\"]');
             return {when: r.querySelector('.when').textContent, next: r.querySelector('.next time').textContent,
                     at: r.querySelector('.next time').getAttribute('datetime'), exp: r.children[3].textContent,
                     state: r.querySelector('[data-state]').dataset.state}")
        .await;
    assert!(
        row["when"]
            .as_str()
            .unwrap()
            .contains("0 * * * * (Europe/Berlin)"),
        "{row}"
    );
    assert!(row["next"].as_str().unwrap().starts_with("in "), "{row}");
    assert_eq!(row["at"], json!(hourly.next_at.unwrap()));
    assert_eq!(
        (row["exp"].clone(), row["state"].clone()),
        (json!("nightly"), json!("active"))
    );
    b.wait(
        "the fast schedule to fire",
        "const r = document.querySelector('tr[data-schedule=\"fast\"]'); return r && !r.children[5].textContent.includes('not yet')",
    )
    .await;
    b.screenshot("schedules.png").await;
    click(&b, "tr[data-schedule=\"fast\"] button.toggle").await;
    b.wait(
        "the fast schedule paused",
        "const r = document.querySelector('tr[data-schedule=\"fast\"]'); return r.querySelector('[data-state]').dataset.state === 'paused' && r.querySelector('.next').textContent === 'paused'",
    )
    .await;
    assert!(!c.get_schedule("fast").await.unwrap().enabled);

    // Its runs, one click away: only runs it fired.
    click(
        &b,
        "tr[data-schedule=\"fast\"] a[href^=\"/runs?schedule=\"]",
    )
    .await;
    b.wait("the fast schedule's runs", "return location.pathname === '/runs' && document.querySelector('#f-schedule') && document.querySelectorAll('#runs tbody tr[data-run]').length > 0").await;
    let names = b
        .js("return [...document.querySelectorAll('#runs tbody tr[data-run] td:nth-child(2) a')].map(a => a.textContent)")
        .await;
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_str().unwrap().starts_with("fast-")),
        "{names}"
    );

    // The run list by experiment.
    b.goto(&format!("{}/runs?experiment={}", env.url, exp.id))
        .await;
    b.wait(
        "the nightly experiment's runs",
        "return document.querySelector('#f-experiment').selectedOptions[0]?.textContent === 'nightly' && [...document.querySelectorAll('#runs tbody tr[data-run]')].map(r => r.dataset.run).join() !== ''",
    )
    .await;
    let ids = b
        .js("return [...document.querySelectorAll('#runs tbody tr[data-run]')].map(r => r.dataset.run)")
        .await;
    assert_eq!(ids, json!([mine.summary.id]));

    // An experiment archived from its page: its runs archived, its schedules paused.
    b.goto(&format!("{}/experiments", env.url)).await;
    b.wait(
        "the experiments",
        "return document.querySelectorAll('#experiments tr[data-experiment]').length === 2",
    )
    .await;
    click(&b, "tr[data-experiment=\"nightly\"] button.archive").await;
    b.wait(
        "nightly archived",
        "return document.querySelector('tr[data-experiment=\"nightly\"] .badge')?.textContent === 'archived'",
    )
    .await;
    assert!(c.get_experiment("nightly").await.unwrap().archived);
    assert!(!c.get_schedule("hourly-train").await.unwrap().enabled);
    assert!(c.get_run(&mine.summary.id).await.unwrap().summary.archived);

    // A link Kubeflow's client printed opens the run here.
    b.goto(&format!("{}/#/runs/details/{}", env.url, mine.summary.id))
        .await;
    b.wait(
        "the run's page",
        &format!(
            "return location.pathname === '/runs/{}' && document.body.textContent.includes('in-nightly')",
            mine.summary.id
        ),
    )
    .await;
    b.quit().await;
}
