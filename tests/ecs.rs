//! The gate as an ECS blue/green deployment's lifecycle hook, end to end: the emulator runs
//! the service's deployments (stages, green tasks registered in the green target group,
//! the hook invoked at `POST_SCALE_UP` and again after each `IN_PROGRESS`, traffic shifted
//! on `SUCCEEDED`, rolled back on `FAILED`), the harness plays each task with the example
//! Django app on its loopback private IP (awsvpc) or its container instance's IP and host
//! port (bridge), and the gate answers each invocation.
//!
//! Where AWS's documentation is silent (whether `lifecycleHookDetails` lists a Lambda hook,
//! whether a revision in deployment has `resolvedConfiguration`, what `startedBy` holds)
//! each scenario runs under both of the emulator's answers, in one world: revision 2 under
//! one, revision 3 under the other, the second deployment's green target group being the
//! first's blue one whenever the first succeeded.

mod common;

use std::time::Duration;

use common::{AppSetup, EcsContract, EcsNetwork, EcsOptions, EcsWorld, Migrations};
use launch_gate::gate::ecs::Invoked;
use serde_json::{Value, json};

fn healthy(_: u32, _: usize) -> Option<AppSetup> {
    Some(AppSetup::default())
}

/// Revisions 2 and 3 are the release under test; revision 1 runs healthy.
fn release(setup: fn() -> AppSetup) -> impl Fn(u32, usize) -> Option<AppSetup> {
    move |revision, _| {
        Some(if revision >= 2 {
            setup()
        } else {
            AppSetup::default()
        })
    }
}

const LIMIT: Duration = Duration::from_secs(90);

/// Revision 3's app lacks the task's (or instance's) IP in `ALLOWED_HOSTS`; the others
/// are healthy.
fn revision_3_rejects_the_ip(revision: u32, _: usize) -> Option<AppSetup> {
    Some(if revision == 3 {
        AppSetup::allowing("shop.example.com")
    } else {
        AppSetup::default()
    })
}

fn status(d: &aws_sdk_ecs::types::ServiceDeployment) -> &str {
    d.status().map_or("none", |s| s.as_str())
}

/// `launch-gate probe --ecs-service shop/web --json`: its exit code and its document.
fn probe_service(world: &EcsWorld) -> (Option<i32>, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_launch-gate"))
        .args(["probe", "--ecs-service", "shop/web", "--json", "--port"])
        .arg(world.port.to_string())
        .env("AWS_ENDPOINT_URL", &world.emulator.url)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), doc)
}

/// Deploys `revision` under `contract` and waits for the deployment's end.
async fn deploy(
    world: &EcsWorld,
    contract: EcsContract,
    revision: u32,
) -> (String, aws_sdk_ecs::types::ServiceDeployment) {
    world.set_contract(contract);
    let deployment = world.deploy(revision).await;
    let ended = world.ended(&deployment, LIMIT).await;
    (deployment, ended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_revision_succeeds_whichever_target_group_is_green() {
    let world = EcsWorld::start(2, json!({}), healthy).await;
    let mut green_groups = Vec::new();
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        assert_eq!(
            status(&ended),
            "SUCCESSFUL",
            "{contract:?}: {:#?}",
            world.answers(&deployment)
        );
        let statuses = world.statuses(&deployment);
        assert_eq!(statuses.first().map(String::as_str), Some("IN_PROGRESS"));
        assert_eq!(statuses.last().map(String::as_str), Some("SUCCEEDED"));
        let service = world.service().await;
        assert_eq!(
            service.current_service_revisions()[0].arn(),
            ended.target_service_revision().and_then(|r| r.arn())
        );
        let last = world.last(&deployment).record;
        assert_eq!(last["ecs"]["verdict"], "SUCCEEDED");
        green_groups.push(last["ecs"]["target_group_arn"].clone());
    }
    // ECS alternates the target groups: the second deployment's green is the first's blue.
    assert_eq!(green_groups[0], json!(world.green_target_group));
    assert_eq!(green_groups[1], json!(world.blue_target_group));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_that_rejects_the_task_ip_fails_and_is_rolled_back() {
    let world = EcsWorld::start(
        2,
        json!({}),
        release(|| AppSetup::allowing("shop.example.com")),
    )
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL", "{contract:?}");
        // production never reached green
        assert_eq!(
            ended
                .target_service_revision()
                .and_then(|r| r.requested_production_traffic_weight())
                .unwrap_or(0.0),
            0.0
        );
        let last = world.last(&deployment);
        assert_eq!(last.response["hookStatus"], "FAILED");
        assert!(last.reason.contains("answered 400"), "{}", last.reason);
        assert!(
            last.reason.contains("green task arn:aws:ecs:"),
            "{}",
            last.reason
        );
        // the task's IP comes from the task metadata endpoint, not the instance's
        assert!(
            last.reason.contains("ECS_CONTAINER_METADATA_URI_V4"),
            "{}",
            last.reason
        );
        assert_eq!(last.record["ecs"]["tasks"][0]["network_mode"], "awsvpc");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unapplied_migrations_fail_naming_them() {
    let world = EcsWorld::start(
        1,
        json!({}),
        release(|| AppSetup {
            migrations: Migrations::NewestUnapplied,
            ..AppSetup::default()
        }),
    )
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL", "{contract:?}");
        let reason = world.last(&deployment).reason;
        assert!(
            reason.contains("migrations: 1 unapplied (catalog.0002_seed_products)"),
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_start_longer_than_several_callbacks_succeeds_once_healthy() {
    // The green task's app starts 6 s after the task: callbacks of 1 s answered
    // IN_PROGRESS within the grace period, then SUCCEEDED.
    let world = EcsWorld::start(
        1,
        json!({"grace_period_seconds": 30}),
        release(|| AppSetup {
            boot_delay: Some(Duration::from_secs(6)),
            ..AppSetup::default()
        }),
    )
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        assert_eq!(status(&ended), "SUCCESSFUL", "{contract:?}");
        let statuses = world.statuses(&deployment);
        assert!(
            statuses.iter().filter(|s| *s == "IN_PROGRESS").count() >= 4,
            "{statuses:?}"
        );
        assert_eq!(statuses.last().map(String::as_str), Some("SUCCEEDED"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_broken_task_of_three_fails_the_deployment_naming_it() {
    // The second green task of each release never starts its app.
    let world = EcsWorld::start(3, json!({}), |revision: u32, nth: usize| {
        (revision == 1 || nth != 1).then(AppSetup::default)
    })
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL", "{contract:?}");
        let reason = world.last(&deployment).reason;
        assert!(reason.contains("green task arn:aws:ecs:"), "{reason}");
        assert!(reason.contains("connection refused"), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redeploy_of_the_same_task_definition_is_judged_on_its_own_tasks() {
    // Blue and green run the same task definition; the green tasks never leave PENDING
    // while the blue ones answer healthy. Only the green deployment's tasks count, even
    // without a target group to tell them apart (a headless service).
    let world = EcsWorld::start_with(
        EcsOptions {
            tasks: 2,
            hook_details: json!({"grace_period_seconds": 3, "max_wait_seconds": 8}),
            headless: true,
            ..EcsOptions::default()
        },
        healthy,
        true,
    )
    .await;
    // ECS enters POST_SCALE_UP once the green tasks started: whether it waits for them to
    // run is not documented.
    world.settings(json!({"scale_up_waits_for_running": false}));
    for (contract, _) in EcsWorld::each_contract() {
        world.set_contract(contract);
        world.settings(json!({"new_tasks_stay_pending": true}));
        let deployment = world.redeploy().await;
        let ended = world.ended(&deployment, LIMIT).await;
        world.settings(json!({"new_tasks_stay_pending": false}));
        assert_eq!(
            status(&ended),
            "ROLLBACK_SUCCESSFUL",
            "{contract:?}: {:#?}",
            world.answers(&deployment)
        );
        let last = world.last(&deployment);
        assert_eq!(last.response["hookStatus"], "FAILED");
        assert!(
            last.reason.contains("0 of 2 green tasks are running"),
            "{}",
            last.reason
        );
        assert!(last.reason.contains("2 PENDING"), "{}", last.reason);
        assert!(
            !world
                .statuses(&deployment)
                .contains(&"SUCCEEDED".to_owned())
        );
    }
}

/// The gate's answer to `event` and its record, as JSON.
async fn answer(gate: &common::RealGate, event: &Value) -> (Value, Value) {
    let (answer, record) = gate.ecs_hook(event, Invoked::default()).await.unwrap();
    (
        serde_json::to_value(answer).unwrap(),
        serde_json::to_value(record).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_invocations_decide_nothing_and_publish_nothing() {
    // A green task that fails. A forger replays the deployment's invocation with a forged
    // run of passes, with settings of its own, names another service, invokes a gate the
    // service's hook does not name, or one that does not serve the cluster.
    let world = EcsWorld::start(
        1,
        json!({"grace_period_seconds": 60}),
        release(|| AppSetup::allowing("shop.example.com")),
    )
    .await;
    world.set_contract(EcsContract::SILENT);
    let deployment = world.deploy(2).await;
    let until = std::time::Instant::now() + LIMIT;
    while world.answers(&deployment).is_empty() {
        assert!(std::time::Instant::now() < until, "no invocation arrived");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let d = world.deployment(&deployment).await;
    let service_arn = d.service_arn().unwrap().to_owned();
    let revision = d
        .target_service_revision()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let forged = |service: &str, details: Value| {
        json!({
            "executionId": "forged",
            "lifecycleStage": "POST_SCALE_UP",
            "resourceArn": deployment,
            "executionDetails": {"serviceArn": service, "targetServiceRevisionArn": revision},
            "hookDetails": details,
        })
    };
    let calls = || common::http_get_json(&format!("{}/_launch_gate/calls", world.emulator.url));
    let put_events = || calls()["PutEvents"].as_u64().unwrap_or(0);
    let events_before = put_events();
    let gate = world.gate();

    // a forged run of 99 passes: this round fails, so no SUCCEEDED
    let state = json!({"launch_gate_state": {"deployment": deployment, "stage": "POST_SCALE_UP",
        "started_ms": 0, "rounds": 99, "tasks": {}}});
    let (a, r) = answer(&gate, &forged(&service_arn, state)).await;
    assert_ne!(a["hookStatus"], "SUCCEEDED", "{r}");

    // the invoker's settings are not the gate's: the hook's configured ones are used
    let (_, r) = answer(
        &gate,
        &forged(
            &service_arn,
            json!({"health_port": 1, "health_path": "/forged", "mode": "shadow"}),
        ),
    )
    .await;
    assert_eq!(r["settings"]["health_port"], world.port, "{r}");
    assert_eq!(r["settings"]["health_path"], "/health", "{r}");
    assert_eq!(r["mode"], "enforce", "{r}");

    // another service's ARN: ECS does not confirm it; nothing probed
    let (a, r) = answer(
        &gate,
        &forged(
            "arn:aws:ecs:us-east-1:123456789012:service/shop/admin",
            json!({}),
        ),
    )
    .await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS");
    assert_eq!(r["probe_count"], 0);
    assert!(r["reason"].as_str().unwrap().contains("belongs to"), "{r}");

    // a function the service's hook does not name
    let other = common::gate(&world.sdk, common::serving_config())
        .with_function_arn("arn:aws:lambda:us-east-1:123456789012:function:someone-else");
    let (a, r) = answer(&other, &forged(&service_arn, json!({}))).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS");
    assert_eq!(r["probe_count"], 0);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("no lifecycle hook that invokes"),
        "{r}"
    );

    // a gate that does not serve the cluster reads nothing
    let reads = calls()["DescribeServiceDeployments"].as_u64().unwrap_or(0);
    let unserving = common::gate(&world.sdk, launch_gate::config::GateConfig::default());
    let (a, r) = answer(&unserving, &forged(&service_arn, json!({}))).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert_eq!(r["outcome"], "not_served");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("LAUNCH_GATE_ECS_SERVICES"),
        "{r}"
    );
    assert_eq!(
        calls()["DescribeServiceDeployments"].as_u64().unwrap_or(0),
        reads
    );

    // none of the refused invocations put an event (the forged run of passes and the
    // forged settings were confirmed and judged on this round, which did not decide yet)
    assert_eq!(put_events(), events_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_that_would_outlast_the_invocation_is_not_counted() {
    let world = EcsWorld::start(1, json!({}), healthy).await;
    let deployment = world.deploy(2).await;
    let until = std::time::Instant::now() + LIMIT;
    while world.answers(&deployment).is_empty() {
        assert!(std::time::Instant::now() < until, "no invocation arrived");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Lambda ends the invocation in 1 s: less than the gate keeps back for its answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let d = world.deployment(&deployment).await;
    let event = json!({
        "executionId": "replayed",
        "lifecycleStage": "POST_SCALE_UP",
        "resourceArn": deployment,
        "executionDetails": {
            "serviceArn": d.service_arn().unwrap(),
            "targetServiceRevisionArn": d.target_service_revision().unwrap().arn().unwrap(),
        },
    });
    let invoked = Invoked {
        deadline: Some(deadline),
        ..Invoked::default()
    };
    let (a, r) = world.gate().ecs_hook(&event, invoked).await.unwrap();
    let a = serde_json::to_value(a).unwrap();
    if d.status().map(|s| s.as_str()) == Some("IN_PROGRESS") {
        assert_eq!(a["hookStatus"], "IN_PROGRESS", "{}", r.reason);
        assert!(r.reason.contains("time ran out"), "{}", r.reason);
        assert_eq!(r.probe_count, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_without_access_fails_naming_the_permission() {
    let world = EcsWorld::start(1, json!({}), healthy).await;
    let (status_line, body) = common::http_post_json(
        &format!("{}/_launch_gate/faults", world.emulator.url),
        &json!({"operation": "DescribeServiceRevisions", "status": 400,
                "code": "AccessDeniedException", "count": -1}),
    );
    assert!(status_line.contains(" 200 "), "{status_line} {body}");
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL");
    let last = world.last(&deployment);
    assert_eq!(last.response["hookStatus"], "FAILED");
    assert!(
        last.reason.contains("DescribeServiceRevisions"),
        "{}",
        last.reason
    );
    assert!(last.reason.contains("AccessDenied"), "{}", last.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wait_longer_than_the_hooks_timeout_is_refused() {
    let world = EcsWorld::start_with(
        EcsOptions {
            hook_details: json!({"max_wait_seconds": 120}),
            timeout_minutes: Some(1),
            ..EcsOptions::default()
        },
        healthy,
        true,
    )
    .await;
    let deployment = world.deploy(2).await;
    let ended = world.ended(&deployment, LIMIT).await;
    assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL");
    let reason = world.last(&deployment).reason;
    assert!(reason.contains("timeoutInMinutes"), "{reason}");
    assert!(reason.contains("max_wait_seconds 120"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shadow_mode_records_the_verdict_and_never_rolls_back() {
    // A release that fails, and settings the gate rejects: shadow answers SUCCEEDED.
    let world = EcsWorld::start(
        1,
        json!({"mode": "shadow"}),
        release(|| AppSetup::allowing("shop.example.com")),
    )
    .await;
    let (deployment, ended) = deploy(&world, EcsContract::SILENT, 2).await;
    assert_eq!(status(&ended), "SUCCESSFUL");
    let last = world.last(&deployment);
    assert_eq!(last.response["hookStatus"], "SUCCEEDED");
    assert_eq!(last.record["ecs"]["verdict"], "FAILED");
    assert!(last.reason.contains("shadow mode"), "{}", last.reason);

    let world = EcsWorld::start_with(
        EcsOptions {
            hook_details: json!({"health_port": "eighty"}),
            gate: launch_gate::config::GateConfig {
                mode: launch_gate::config::Mode::Shadow,
                ..common::serving_config()
            },
            ..EcsOptions::default()
        },
        healthy,
        true,
    )
    .await;
    let (deployment, ended) = deploy(&world, EcsContract::SILENT, 2).await;
    assert_eq!(status(&ended), "SUCCESSFUL");
    let last = world.last(&deployment);
    assert!(last.reason.contains("health_port"), "{}", last.reason);
    assert_eq!(last.record["ecs"]["verdict"], "FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridge_mode_tasks_are_checked_on_their_instance_and_host_port() {
    // Django in ECS on EC2 container instances, bridge networking, dynamic host ports,
    // instance targets: revision 2 healthy, revision 3's app lacks the instance's IP.
    let world = EcsWorld::start_with(
        EcsOptions {
            tasks: 2,
            network: EcsNetwork::Bridge,
            ..EcsOptions::default()
        },
        revision_3_rejects_the_ip,
        true,
    )
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        let last = world.last(&deployment);
        let task = &last.record["ecs"]["tasks"][0];
        assert_eq!(task["network_mode"], "host_port", "{}", last.record);
        assert!(task["target"].as_str().unwrap().starts_with("i-"), "{task}");
        if revision == 2 {
            assert_eq!(
                status(&ended),
                "SUCCESSFUL",
                "{:#?}",
                world.answers(&deployment)
            );
        } else {
            assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL");
            assert_eq!(last.response["hookStatus"], "FAILED");
            assert_eq!(
                last.record["cause"]["code"], "host_rejected",
                "{}",
                last.reason
            );
            assert!(
                last.reason.contains("container instance's private IP"),
                "{}",
                last.reason
            );
        }
    }
    // From a terminal: each running task on its instance's IP and host port.
    let (code, doc) = probe_service(&world);
    assert_eq!(code, Some(0), "{doc}");
    let tasks = doc["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{doc}");
    assert!(
        tasks.iter().all(|t| t["port"] != json!(world.port)),
        "host ports, not the container port: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_shift_hooks_pass_and_a_rollback_is_never_held_up() {
    // The gate's hook also runs at both traffic shifts. Revision 2 is healthy: the shifts
    // are answered SUCCEEDED (nothing to check there). Revision 3 fails at POST_SCALE_UP:
    // ECS invokes the traffic-shift hooks again during the rollback, and the gate answers
    // them SUCCEEDED, whichever contract.
    use aws_sdk_ecs::types::DeploymentLifecycleHookStage as Stage;
    let world = EcsWorld::start_with(
        EcsOptions {
            stages: vec![
                Stage::PostScaleUp,
                Stage::TestTrafficShift,
                Stage::ProductionTrafficShift,
            ],
            ..EcsOptions::default()
        },
        revision_3_rejects_the_ip,
        true,
    )
    .await;
    for (contract, revision) in EcsWorld::each_contract() {
        let (deployment, ended) = deploy(&world, contract, revision).await;
        let answers = world.answers(&deployment);
        let at = |stage: &str| -> Vec<String> {
            answers
                .iter()
                .filter(|a| a.stage == stage)
                .map(common::Answer::status)
                .collect()
        };
        assert_eq!(at("TEST_TRAFFIC_SHIFT"), ["SUCCEEDED"], "{answers:#?}");
        assert_eq!(
            at("PRODUCTION_TRAFFIC_SHIFT"),
            ["SUCCEEDED"],
            "{answers:#?}"
        );
        if revision == 2 {
            assert_eq!(status(&ended), "SUCCESSFUL", "{contract:?}");
        } else {
            assert_eq!(status(&ended), "ROLLBACK_SUCCESSFUL", "{contract:?}");
            assert_eq!(
                at("POST_SCALE_UP").last().map(String::as_str),
                Some("FAILED")
            );
            let shift = answers
                .iter()
                .find(|a| a.stage == "TEST_TRAFFIC_SHIFT")
                .unwrap();
            assert!(
                shift.reason.contains("ROLLBACK_IN_PROGRESS"),
                "{}",
                shift.reason
            );
        }
    }
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
    let until = std::time::Instant::now() + LIMIT;
    let (code, doc) = loop {
        assert!(
            std::time::Instant::now() < until,
            "the tasks never answered"
        );
        let (code, doc) = probe_service(&world);
        // both apps up: one passes, one answers 400
        let answered = doc["tasks"].as_array().is_some_and(|t| {
            t.len() == 2
                && t.iter()
                    .all(|t| t["checks"][0]["status"].as_u64().is_some())
        });
        if answered {
            break (code, doc);
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
