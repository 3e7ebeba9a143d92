//! The gate as an ECS blue/green deployment's lifecycle hook, end to end: the emulator runs
//! the service's deployments (stages, green tasks registered in the green target group,
//! the hook invoked at `POST_SCALE_UP` and again after each `IN_PROGRESS`, traffic shifted
//! on `SUCCEEDED`, rolled back on `FAILED`), the harness plays each task with the example
//! Django app on its loopback private IP, and the gate answers each invocation.

mod common;

use std::time::Duration;

use common::{AppSetup, EcsWorld, Migrations};
use serde_json::{Value, json};

/// Revision 2 is the release under test; revision 1 runs healthy.
fn healthy(_: u32, _: usize) -> Option<AppSetup> {
    Some(AppSetup::default())
}

fn revision_2(setup: fn() -> AppSetup) -> impl Fn(u32, usize) -> Option<AppSetup> {
    move |revision, _| {
        Some(if revision == 2 {
            setup()
        } else {
            AppSetup::default()
        })
    }
}

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_revision_is_in_progress_then_succeeded_and_takes_production() {
    let world = EcsWorld::start(2, json!({}), healthy).await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(
        ended.status().map(|s| s.as_str()),
        Some("SUCCESSFUL"),
        "{:?}",
        world.answers.lock().unwrap()
    );
    let statuses = world.statuses();
    assert_eq!(statuses.first().map(String::as_str), Some("IN_PROGRESS"));
    assert_eq!(statuses.last().map(String::as_str), Some("SUCCEEDED"));
    let service = world.service().await;
    assert_eq!(
        service.current_service_revisions()[0].arn(),
        ended.target_service_revision().and_then(|r| r.arn())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_that_rejects_the_task_ip_fails_and_is_rolled_back() {
    let world = EcsWorld::start(
        2,
        json!({}),
        revision_2(|| AppSetup::allowing("shop.example.com")),
    )
    .await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(
        ended.status().map(|s| s.as_str()),
        Some("ROLLBACK_SUCCESSFUL")
    );
    // production never reached green
    assert_eq!(
        ended
            .target_service_revision()
            .and_then(|r| r.requested_production_traffic_weight())
            .unwrap_or(0.0),
        0.0
    );
    let answers = world.answers.lock().unwrap().clone();
    let (last, reason) = answers.last().unwrap();
    assert_eq!(last["hookStatus"], "FAILED");
    assert!(reason.contains("answered 400"), "{reason}");
    assert!(reason.contains("green task arn:aws:ecs:"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unapplied_migrations_fail_naming_them() {
    let world = EcsWorld::start(
        1,
        json!({}),
        revision_2(|| AppSetup {
            migrations: Migrations::NewestUnapplied,
            ..AppSetup::default()
        }),
    )
    .await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(
        ended.status().map(|s| s.as_str()),
        Some("ROLLBACK_SUCCESSFUL")
    );
    let answers = world.answers.lock().unwrap().clone();
    let (_, reason) = answers.last().unwrap();
    assert!(
        reason.contains("migrations: 1 unapplied (catalog.0002_seed_products)"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_start_longer_than_several_callbacks_succeeds_once_healthy() {
    // The green task's app starts 6 s after the task: six callbacks of 1 s answered
    // IN_PROGRESS, within the grace period, then SUCCEEDED.
    let world = EcsWorld::start(
        1,
        json!({"grace_period_seconds": 30}),
        revision_2(|| AppSetup {
            boot_delay: Some(Duration::from_secs(6)),
            ..AppSetup::default()
        }),
    )
    .await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(ended.status().map(|s| s.as_str()), Some("SUCCESSFUL"));
    let statuses = world.statuses();
    assert!(
        statuses.iter().filter(|s| *s == "IN_PROGRESS").count() >= 4,
        "{statuses:?}"
    );
    assert_eq!(statuses.last().map(String::as_str), Some("SUCCEEDED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_broken_task_of_three_fails_the_deployment_naming_it() {
    // The second green task never starts its app.
    let world = EcsWorld::start(3, json!({}), |revision: u32, nth: usize| {
        (revision == 1 || nth != 1).then(AppSetup::default)
    })
    .await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(
        ended.status().map(|s| s.as_str()),
        Some("ROLLBACK_SUCCESSFUL")
    );
    let answers = world.answers.lock().unwrap().clone();
    let (_, reason) = answers.last().unwrap();
    assert!(reason.contains("green task arn:aws:ecs:"), "{reason}");
    assert!(reason.contains("connection refused"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_invocations_get_no_succeeded() {
    // A green task that fails; a forger replays the deployment's invocation with a forged
    // run of passes, and names another service.
    let world = EcsWorld::start(
        1,
        json!({"grace_period_seconds": 60}),
        revision_2(|| AppSetup::allowing("shop.example.com")),
    )
    .await;
    let deployment = world.deploy(2).await;
    let real = loop {
        let responses = common::http_get_json(&format!(
            "{}/_launch_gate/ecs/hook-responses",
            world.emulator.url
        ));
        if let Some(r) = responses.as_array().and_then(|a| a.first()).cloned() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(real["serviceDeploymentArn"], deployment.as_str());
    let gate = world.gate();
    let d = world
        .ecs
        .describe_service_deployments()
        .service_deployment_arns(&deployment)
        .send()
        .await
        .unwrap()
        .service_deployments()[0]
        .clone();
    let service_arn = d.service_arn().unwrap().to_owned();
    let revision = d
        .target_service_revision()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let forged = |service: &str, state: Value| {
        json!({
            "executionId": "forged",
            "lifecycleStage": "POST_SCALE_UP",
            "resourceArn": deployment,
            "executionDetails": {"serviceArn": service, "targetServiceRevisionArn": revision},
            "hookDetails": {"launch_gate_state": state},
        })
    };
    // a forged run of 99 passes: this round fails, so no SUCCEEDED
    let (answer, record) = gate
        .ecs_hook(
            &forged(
                &service_arn,
                json!({"deployment": deployment, "stage": "POST_SCALE_UP", "started_ms": 0, "rounds": 99,
                       "tasks": {}}),
            ),
            None,
        )
        .await
        .unwrap();
    assert_ne!(
        serde_json::to_value(answer).unwrap()["hookStatus"],
        "SUCCEEDED",
        "{}",
        record.reason
    );
    // another service's ARN: ECS does not confirm it; nothing probed
    let (answer, record) = gate
        .ecs_hook(
            &forged(
                "arn:aws:ecs:us-east-1:123456789012:service/shop/admin",
                json!({}),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(answer).unwrap()["hookStatus"],
        "IN_PROGRESS"
    );
    assert_eq!(record.probe_count, 0);
    assert!(record.reason.contains("belongs to"), "{}", record.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_checks_every_running_task_of_a_service() {
    // One task healthy, one whose app rejects the load balancer's Host.
    let world = EcsWorld::start(2, json!({}), |_: u32, nth: usize| {
        Some(if nth == 0 {
            AppSetup::default()
        } else {
            AppSetup::allowing("shop.example.com")
        })
    })
    .await;
    let (code, doc) = loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_launch-gate"))
            .args(["probe", "--ecs-service", "shop/web", "--json", "--port"])
            .arg(world.port.to_string())
            .env("AWS_ENDPOINT_URL", &world.emulator.url)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        // both apps up: one passes, one answers 400
        let answered = doc["tasks"].as_array().is_some_and(|t| {
            t.len() == 2
                && t.iter()
                    .all(|t| t["checks"][0]["status"].as_u64().is_some())
        });
        if answered {
            break (out.status.code(), doc);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["healthy"], false);
    let statuses: Vec<u64> = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["checks"][0]["status"].as_u64().unwrap())
        .collect();
    assert!(statuses.contains(&200) && statuses.contains(&400), "{doc}");
}
