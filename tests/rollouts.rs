//! Rollouts beyond one instance, end to end: the emulator's group launches and replaces
//! instances (scale-out, instance refresh, replacement of abandoned launches), each
//! launch boots its release's Django app on its private IP, and the gate decides every
//! held launch. Proves the launch-loop breaker (a broken release trips it after three
//! ABANDONs and the launches stop or the refresh is rolled back; a healthy release and a
//! single flaky ABANDON never trip it), the decision and `Rollout Halted` events as a
//! pipeline's EventBridge rule receives them, and `launch-gate rollout`'s exit codes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{AppSetup, Rollout, World, eventually, text};
use launch_gate::config::{BreakerAction, GateConfig};
use serde_json::Value;

/// Every release boots a healthy app.
fn healthy(_: &str, _: usize) -> Option<AppSetup> {
    Some(AppSetup::default())
}

/// Version 2 is the broken release: Django rejects the ELB's `Host: <private-ip>:<port>`.
fn version_2_broken(version: &str, _: usize) -> Option<AppSetup> {
    Some(if version == "2" {
        AppSetup::allowing("shop.example.com")
    } else {
        AppSetup::default()
    })
}

/// The first instance that boots never starts its app (a flaky boot); every other is
/// healthy.
fn first_boot_fails(_: &str, nth: usize) -> Option<AppSetup> {
    (nth > 0).then(AppSetup::default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_release_trips_the_breaker_after_three_abandons_and_launches_stop() {
    let mut r = Rollout::start(2, GateConfig::default(), version_2_broken).await;
    r.new_version().await;
    // Scale out on the broken release: two launches at a time, each abandoned and replaced.
    r.scale_out_on_version_2().await;
    let cli = r.rollout_cli(&["--timeout", "150s"]);

    r.launches_suspended().await;
    // The launches already under way when it tripped (replacements of the abandons
    // decided at the same time) are decided; after the suspension, nothing is launched.
    let launched = r.launches_of("2").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(r.launches_of("2").await, launched, "the loop goes on");
    assert!(
        (3..=6).contains(&launched),
        "{launched} launches of version 2"
    );
    assert_eq!(r.calls("SuspendProcesses"), 1);
    assert_eq!(
        r.in_service()
            .await
            .iter()
            .filter(|(_, v)| v == "2")
            .count(),
        0
    );

    let halted = r.events.details("Rollout Halted").await;
    assert_eq!(halted.len(), 1, "the breaker trips once: {halted:#?}");
    let h = &halted[0];
    assert_eq!(h["group_name"], "shop-web");
    assert_eq!(h["launch_template"]["version"], "2");
    assert_eq!(h["action"], "suspend");
    assert!(h["abandons"].as_array().unwrap().len() >= 3, "{h:#}");
    assert_eq!(h["tripped_by"]["cause"]["code"], "host_rejected");
    assert!(
        h["resume_command"].as_str().unwrap().contains(
            "resume-processes --auto-scaling-group-name shop-web --scaling-processes Launch"
        ),
        "{h:#}"
    );

    let decisions = r.decisions(launched + 2).await;
    let abandons: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["result"] == "ABANDON")
        .collect();
    assert_eq!(abandons.len(), launched, "one decision event per launch");
    for d in &abandons {
        assert_eq!(d["launch_template"]["version"], "2");
        assert_eq!(d["cause"]["code"], "host_rejected");
        assert!(
            d["cause"]["fix"]
                .as_str()
                .unwrap()
                .contains("ALLOWED_HOSTS")
        );
        assert!(d["time_to_decision_ms"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d["result"] == "CONTINUE")
            .count(),
        2
    );

    let out = cli.await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("ABANDON cause=host_rejected"), "{printed}");
    assert!(
        printed.contains("rollout halted: the launch-loop breaker tripped"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_instance_refresh_is_rolled_back() {
    let config = GateConfig {
        breaker_action: BreakerAction::Rollback,
        ..GateConfig::default()
    };
    let mut r = Rollout::start(2, config, version_2_broken).await;
    r.new_version().await;
    r.start_refresh_to_version_2().await;
    let cli = r.rollout_cli(&["--timeout", "150s"]);

    eventually(
        "the refresh is rolled back",
        Duration::from_secs(150),
        || async {
            let status = r.refresh().await.status().unwrap().as_str().to_owned();
            (status == "RollbackSuccessful").then_some(())
        },
    )
    .await;
    assert_eq!(r.calls("RollbackInstanceRefresh"), 1);
    assert_eq!(r.calls("SuspendProcesses"), 0);
    let serving = r.in_service().await;
    assert_eq!(serving.len(), 2);
    assert!(serving.iter().all(|(_, v)| v == "1"), "{serving:?}");
    let launched = r.launches_of("2").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        r.launches_of("2").await,
        launched,
        "version 2 is still launched"
    );

    let halted = r.events.details("Rollout Halted").await;
    assert_eq!(halted.len(), 1, "{halted:#?}");
    let taken = halted[0]["action_taken"].as_str().unwrap();
    assert!(taken.contains("rolled back instance refresh"), "{taken}");
    assert_eq!(halted[0]["action"], "rollback");

    let out = cli.await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("(from the desired configuration of instance refresh"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_that_cannot_be_rolled_back_is_cancelled_and_the_event_says_why() {
    let config = GateConfig {
        breaker_action: BreakerAction::Rollback,
        ..GateConfig::default()
    };
    let mut r = Rollout::start(2, config, version_2_broken).await;
    r.new_version().await;
    // `$Latest` (version 2): AWS cannot roll such a refresh back.
    r.start_refresh_to("$Latest").await;

    eventually(
        "the refresh is cancelled",
        Duration::from_secs(120),
        || async { (r.refresh().await.status().unwrap().as_str() == "Cancelled").then_some(()) },
    )
    .await;
    assert_eq!(r.calls("RollbackInstanceRefresh"), 1);
    assert_eq!(r.calls("CancelInstanceRefresh"), 1);
    let halted = r.events.details("Rollout Halted").await;
    assert_eq!(halted.len(), 1, "{halted:#?}");
    let taken = halted[0]["action_taken"].as_str().unwrap();
    assert!(taken.contains("cannot be rolled back ("), "{taken}");
    assert!(taken.contains("$Latest"), "{taken}");
    assert!(taken.contains("so it was cancelled instead"), "{taken}");
    // The group still names version 1: launches for missing capacity bring it back.
    eventually(
        "the group is back to capacity",
        Duration::from_secs(60),
        || async {
            let serving = r.in_service().await;
            (serving.len() == 2).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_release_rolls_out_and_never_trips_the_breaker() {
    let mut r = Rollout::start(2, GateConfig::default(), healthy).await;
    r.new_version().await;
    r.start_refresh_to_version_2().await;
    let out = r.rollout_cli(&["--timeout", "120s"]).await.unwrap();
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("rollout succeeded: 2 of 2 in service and passed the gate"),
        "{printed}"
    );
    assert!(printed.contains("CONTINUE"), "{printed}");
    eventually("the refresh succeeds", Duration::from_secs(30), || async {
        (r.refresh().await.status().unwrap().as_str() == "Successful").then_some(())
    })
    .await;
    let serving = r.in_service().await;
    assert!(serving.iter().all(|(_, v)| v == "2"), "{serving:?}");

    let decisions = r.decisions(4).await;
    assert_eq!(decisions.len(), 4, "two launches of each version");
    assert!(decisions.iter().all(|d| d["result"] == "CONTINUE"));
    assert!(r.events.details("Rollout Halted").await.is_empty());
    assert_eq!(r.calls("SuspendProcesses"), 0);
    assert_eq!(r.calls("RollbackInstanceRefresh"), 0);
    assert_eq!(
        r.calls("DescribeScalingActivities"),
        0,
        "the breaker counts only after an ABANDON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_flaky_abandon_among_successes_does_not_trip() {
    let mut r = Rollout::start(3, GateConfig::default(), first_boot_fails).await;
    let out = r
        .rollout_cli(&["--expect", "3", "--timeout", "60s", "--json"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["status"], "succeeded");
    assert!(
        lines
            .iter()
            .all(|l| l["event"] != "end" || l["passed"] == 3)
    );

    let decisions = r.decisions(4).await;
    let abandons: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["result"] == "ABANDON")
        .collect();
    assert_eq!(abandons.len(), 1, "{decisions:#?}");
    let breaker = &abandons[0]["breaker"];
    assert_eq!(breaker["tripped"], false);
    assert_eq!(breaker["abandons"].as_array().unwrap().len(), 1);
    assert_eq!(breaker["threshold"], 3);
    assert!(r.events.details("Rollout Halted").await.is_empty());
    assert_eq!(r.calls("SuspendProcesses"), 0);
    assert!(
        r.group()
            .await
            .tags()
            .iter()
            .all(|t| t.key() != Some("launch-gate:breaker"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_says_what_is_wrong_with_its_arguments() {
    let emulator = common::Emulator::start();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_launch-gate"))
            .arg("rollout")
            .args(args)
            .env("AWS_ENDPOINT_URL", &emulator.url)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    for (args, says) in [
        (&[][..], "--group"),
        (
            &["--group", "shop-web", "--timeout", "10d"][..],
            "not a duration",
        ),
        (&["--group", "shop-web", "--expect", "0"][..], "--expect"),
        (
            &["--group", "no-such-group"][..],
            "the Auto Scaling group no-such-group does not exist",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_bus_that_fails_changes_no_decision() {
    let world = World::new(serde_json::json!({})).await;
    let _app = common::DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject_fault("PutEvents", -1);
    let record = world.gate_once("launch.json").await;
    assert_eq!(
        record.result,
        Some(launch_gate::aws::LifecycleActionResult::Continue)
    );
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
    assert!(world.calls()["PutEvents"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_trips_when_ec2_has_already_dropped_the_abandoned_instances_tags() {
    // EC2 here drops a terminated instance's tags at once, as AWS may within minutes: the
    // breaker cannot read the abandoned instances' launch template version, and still trips.
    let mut r = Rollout::start_with(
        2,
        GateConfig::default(),
        version_2_broken,
        vec!["--terminated-tags-seconds", "0"],
    )
    .await;
    r.new_version().await;
    r.scale_out_on_version_2().await;

    r.launches_suspended().await;
    let halted = r.events.details("Rollout Halted").await;
    assert_eq!(halted.len(), 1, "the breaker trips once: {halted:#?}");
    assert!(
        halted[0]["abandons"].as_array().unwrap().len() >= 3,
        "{:#}",
        halted[0]
    );
    assert_eq!(r.calls("SuspendProcesses"), 1);
}
