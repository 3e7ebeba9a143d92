//! The gate end to end, in-process: a lifecycle event from `events/` in, `CONTINUE` or
//! `ABANDON` out, against the AWS emulator and the example Django app under gunicorn on
//! the instance's loopback private IP. Each test asserts the lifecycle state in the
//! emulator and the decision record.

mod common;

use std::time::Duration;

use common::{AppSetup, DjangoApp, Migrations, World};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::config::Mode;
use launch_gate::record::Outcome;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn healthy_release_continues_and_goes_in_service() {
    let world = World::new(json!({})).await;
    assert_eq!(
        world.lifecycle_state().await.as_deref(),
        Some("Pending:Wait")
    );
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::Completed);
    assert_eq!(record.result, Some(Continue));
    assert_eq!(record.probe_count, 2);
    assert!(record.probes.iter().all(|p| p.status == Some(200)));
    assert_eq!(
        record.host_header.as_deref(),
        Some(format!("{}:{}", world.ip, world.port).as_str())
    );
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
    assert_eq!(world.accepted_completions().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_grace_period_is_the_groups_health_check_grace_period() {
    // The AMI installs packages for four minutes, and the group knows it
    // (HealthCheckGracePeriod 240): the gate's `auto` grace period, the default, waits as
    // long before a failure may ABANDON early.
    let world = World::new(json!({"grace_period_seconds": "auto"})).await;
    world
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&world.group)
        .health_check_grace_period(240)
        .send()
        .await
        .unwrap();
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue));
    let settings = record.settings.expect("the settings used");
    assert_eq!(settings.grace_period, Duration::from_secs(240));
}

#[tokio::test(flavor = "multi_thread")]
async fn unapplied_migrations_abandon_and_the_instance_is_terminated() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(
        world.ip,
        world.port,
        AppSetup {
            migrations: Migrations::NewestUnapplied,
            ..AppSetup::default()
        },
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    let cause = record.cause.as_ref().expect("a cause");
    assert_eq!(cause.code, "deep_check_failed");
    // The group's only instance: nothing runs beside it to compare with.
    let baseline = record.baseline.as_ref().expect("the baseline looked for");
    assert_eq!(baseline.status, launch_gate::record::BaselineStatus::None);
    assert!(
        baseline.note.starts_with("no baseline"),
        "{}",
        baseline.note
    );
    assert!(
        cause
            .summary
            .contains("migrations: 1 unapplied (catalog.0002_seed_products)"),
        "{}",
        cause.summary
    );
    assert!(record.reason.contains("Fix: "), "{}", record.reason);
    assert_eq!(record.last_failure.as_ref().unwrap().status, Some(503));
    assert_eq!(world.lifecycle_state().await, None);
    assert_eq!(world.instance_state().await, "terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_hosts_without_the_private_ip_abandons_with_the_fix() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    assert!(!record.probes.is_empty());
    assert!(record.probes.iter().all(|p| p.status == Some(400)));
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(cause.code, "host_rejected");
    assert!(
        cause.summary.contains("DisallowedHost"),
        "{}",
        cause.summary
    );
    assert!(cause.fix.contains("ALLOWED_HOSTS"), "{}", cause.fix);
    assert_eq!(world.instance_state().await, "terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn app_that_never_starts_abandons_as_connection_refused() {
    let world = World::new(json!({})).await;
    let mut app = DjangoApp::start(
        world.ip,
        world.port,
        AppSetup {
            secret_key: false,
            ..AppSetup::default()
        },
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    assert_eq!(record.cause.as_ref().unwrap().code, "connection_refused");
    let log = app.exited().expect("gunicorn exits when settings raise");
    assert!(log.contains("DJANGO_SECRET_KEY is required"), "{log}");
    assert_eq!(world.instance_state().await, "terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn app_healthy_after_fifteen_seconds_continues() {
    let world = World::new(json!({"grace_period_seconds": 30, "max_wait_seconds": 60})).await;
    // The release's start-up script applies migrations after about 15 s.
    let migrate = DjangoApp::start_migrating_after(world.ip, world.port, Duration::from_secs(15));

    let record = world.gate_once("launch.json").await;
    let _app = migrate.await.unwrap();

    assert_eq!(record.result, Some(Continue));
    assert!(record.probes.first().unwrap().status == Some(503));
    assert!(
        record.time_to_decision_ms >= 15_000,
        "{}",
        record.time_to_decision_ms
    );
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_again_completes_nothing_and_fails_nothing() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let first = world.gate_once("launch.json").await;
    assert_eq!(first.outcome, Outcome::Completed);

    let second = world.gate_once("launch.json").await;

    assert_eq!(second.outcome, Outcome::AlreadyDecided);
    // Admission asks Auto Scaling first: the instance went in service.
    assert!(second.reason.contains("InService"), "{}", second.reason);
    assert_eq!(second.probe_count, 0);
    assert_eq!(world.accepted_completions().len(), 1);
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn test_notification_and_terminating_transition_are_ignored() {
    let world = World::new(json!({})).await;
    for sample in ["test-notification-sns.json", "terminate.json"] {
        let summary = world
            .gate()
            .handle(&world.event(sample), None)
            .await
            .unwrap();
        assert!(summary.decisions.is_empty());
        assert_eq!(summary.ignored.len(), 1, "{sample}");
    }
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shadow_mode_continues_a_broken_release_and_records_the_abandon() {
    let world = World::new(json!({"mode": "shadow"})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.mode, Some(Mode::Shadow));
    assert_eq!(record.verdict, Some(Abandon));
    assert_eq!(record.result, Some(Continue));
    assert_eq!(record.cause.as_ref().unwrap().code, "host_rejected");
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_event_is_a_clear_error_and_completes_nothing() {
    let world = World::new(json!({})).await;
    let mut event = world.event("launch.json");
    event["detail"]
        .as_object_mut()
        .unwrap()
        .remove("EC2InstanceId");

    let err = world.gate().handle(&event, None).await.unwrap_err();

    assert_eq!(
        err.to_string(),
        "malformed event: detail.EC2InstanceId is missing"
    );
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_and_sqs_deliveries_are_gated_like_eventbridge() {
    for sample in ["launch-sns.json", "launch-sqs.json"] {
        let world = World::new(json!({})).await;
        let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
        let record = world.gate_once(sample).await;
        assert_eq!(record.result, Some(Continue), "{sample}");
        assert_eq!(
            world.lifecycle_state().await.as_deref(),
            Some("InService"),
            "{sample}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_pool_launch_continues_at_once_and_leaving_the_pool_is_gated() {
    let world = World::new(json!({})).await;
    // No app runs: an instance entering the warm pool is stopped right after launch.
    let action = world.launch_into_warm_pool().await;
    let summary = world
        .gate()
        .handle(
            &common::sample_event("launch-into-warm-pool.json", &action),
            None,
        )
        .await
        .unwrap();
    let record = &summary.decisions[0];
    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    assert_eq!(record.probe_count, 0);
    assert!(
        record.reason.contains("Warmed:Pending:Wait"),
        "{}",
        record.reason
    );
    // The event claimed it: a launch into the pool that Auto Scaling does not hold there
    // is gated like any launch (see hostile_invoker.rs).

    let world = World::new(json!({})).await;
    let record = world.gate_once("launch-from-warm-pool.json").await;
    assert_eq!(record.result, Some(Abandon));
    assert_eq!(record.cause.as_ref().unwrap().code, "connection_refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_hook_settings_leave_the_action_to_its_default_result() {
    let port = common::free_port();
    let world = World::with_metadata(port, Some(r#"{"health_prot": 8000}"#.into()), 300).await;

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::HandedOff);
    assert!(
        record.reason.contains("\"health_prot\" is unknown"),
        "{}",
        record.reason
    );
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_keep_a_long_wait_alive() {
    // HeartbeatTimeout 30 s (the minimum): without heartbeats the emulator would apply
    // DefaultResult after 30 s; the gate waits 40 s and then decides itself.
    let port = common::free_port();
    let mut metadata = common::fast_settings(port);
    metadata["max_wait_seconds"] = json!(40);
    metadata["grace_period_seconds"] = json!(60);
    let world = World::with_metadata(port, Some(metadata.to_string()), 30).await;

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::Completed, "{}", record.reason);
    assert_eq!(record.result, Some(Abandon));
    assert!(record.heartbeats >= 2, "{}", record.heartbeats);
    let action = world.action_now();
    assert_eq!(action["EndedBy"], "CompleteLifecycleAction");
    assert_eq!(
        action["Heartbeats"].as_array().unwrap().len() as u32,
        record.heartbeats
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_only_instance_is_probed_on_its_ipv6_address() {
    // An instance in an IPv6-only subnet has no private IPv4 address: the gate probes its
    // IPv6 address, with the Host header the load balancer sends (`[addr]:port`).
    let world = World::new(json!({})).await;
    world.post(
        "/_launch_gate/ipv6-only",
        &json!({"instance_id": world.instance_id, "ipv6": "::1"}),
    );
    let ip: std::net::IpAddr = "::1".parse().unwrap();
    let _app = DjangoApp::start(ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    assert_eq!(record.private_ip.as_deref(), Some("::1"));
    assert_eq!(
        record.host_header.as_deref(),
        Some(format!("[::1]:{}", world.port).as_str())
    );
}
