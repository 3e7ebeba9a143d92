//! Waits longer than one Lambda invocation. Each invocation here gets a short deadline;
//! before it, the gate hands its state to a fresh invocation of itself (an asynchronous
//! `Invoke` of its own function, which the emulator records), and the test delivers that
//! payload as Lambda would. The wait goes on across invocations, heartbeats keep the
//! action alive past a short heartbeat timeout, and the whole wait honours max_wait.

mod common;

use std::time::Duration;

use common::{AppSetup, DjangoApp, World, free_port};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use launch_gate::record::{DecisionRecord, Outcome};
use serde_json::{Value, json};
use tokio::time::Instant;

const FUNCTION: &str = "launch-gate-tests";

/// Delivers `event`, then every continuation the gate hands over, each invocation with a
/// deadline `invocation` away, until a decision. The records, one per invocation.
async fn run_across_invocations(
    world: &World,
    event: Value,
    invocation: Duration,
) -> Vec<DecisionRecord> {
    let aws = SdkAws::new(&world.sdk).with_function_name(Some(FUNCTION.to_owned()));
    let gate = Gate::new(GateConfig::default(), HttpProber::new(), aws);
    let mut records = Vec::new();
    let mut event = event;
    for hop in 0..20 {
        let summary = gate
            .handle_invocation(
                &event,
                Some(Instant::now() + invocation),
                Some(&format!("invocation-{hop}")),
            )
            .await
            .unwrap();
        let record = summary.decisions.into_iter().next().unwrap();
        let continued = record.outcome == Outcome::Continued;
        records.push(record);
        if !continued {
            return records;
        }
        let invocations = world.invocations();
        assert_eq!(
            invocations.len(),
            hop + 1,
            "one asynchronous Invoke per hand-over"
        );
        let (function, payload) = invocations.last().unwrap().clone();
        assert_eq!(function, FUNCTION);
        event = payload;
    }
    panic!("no decision after 20 invocations");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_healthy_after_the_first_invocations_is_continued_by_a_later_one() {
    // HeartbeatTimeout 30 s (the minimum), each invocation 16 s long (6 s of probing
    // before the 10 s reserve), and the app healthy after about 20 s: without heartbeats
    // and hand-overs, the action would time out and the wait could not finish.
    let port = free_port();
    let mut metadata = common::fast_settings(port);
    metadata["grace_period_seconds"] = json!(60);
    metadata["max_wait_seconds"] = json!(90);
    let world = World::with_metadata(port, Some(metadata.to_string()), 30).await;
    let migrate = DjangoApp::start_migrating_after(world.ip, world.port, Duration::from_secs(20));

    let records =
        run_across_invocations(&world, world.event("launch.json"), Duration::from_secs(16)).await;
    let _app = migrate.await.unwrap();

    let last = records.last().unwrap();
    assert_eq!(
        (last.outcome, last.result),
        (Outcome::Completed, Some(Continue)),
        "{}",
        last.reason
    );
    assert!(records.len() >= 3, "{} invocations", records.len());
    assert!(
        records[..records.len() - 1]
            .iter()
            .all(|r| r.outcome == Outcome::Continued)
    );
    assert_eq!(last.hop as usize, records.len() - 1);
    // The last record counts the whole wait: its time and every invocation's probes.
    assert!(
        last.time_to_decision_ms >= 20_000,
        "{}",
        last.time_to_decision_ms
    );
    assert!(last.probe_count >= 18, "{}", last.probe_count);
    let action = world.action_now();
    assert!(
        !action["Heartbeats"].as_array().unwrap().is_empty(),
        "{action}"
    );
    assert_eq!(action["EndedBy"], "CompleteLifecycleAction");
    assert_eq!(
        last.heartbeats as usize,
        action["Heartbeats"].as_array().unwrap().len()
    );
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_wait_holds_across_invocations() {
    // A broken app, a grace period longer than the wait: only the wait's end decides.
    let world = World::new(json!({"grace_period_seconds": 60, "max_wait_seconds": 20})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    let started = std::time::Instant::now();

    let records =
        run_across_invocations(&world, world.event("launch.json"), Duration::from_secs(16)).await;

    let last = records.last().unwrap();
    assert_eq!(last.result, Some(Abandon), "{}", last.reason);
    assert!(records.len() >= 3, "{} invocations", records.len());
    assert!(last.reason.contains("within 20 s"), "{}", last.reason);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(19) && elapsed < Duration::from_secs(30),
        "{elapsed:?}"
    );
    assert_eq!(last.cause.as_ref().unwrap().code, "host_rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_own_function_name_the_gate_hands_off_to_the_default_result() {
    let world = World::new(json!({"grace_period_seconds": 60})).await;
    let summary = world
        .gate()
        .handle(
            &world.event("launch.json"),
            Some(Instant::now() + Duration::from_secs(13)),
        )
        .await
        .unwrap();
    let record = &summary.decisions[0];
    assert_eq!(record.outcome, Outcome::HandedOff);
    assert!(
        record
            .reason
            .contains("could not be handed to a new invocation"),
        "{}",
        record.reason
    );
    assert!(world.invocations().is_empty());
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_continuation_is_rejected() {
    let world = World::new(json!({})).await;
    let bad = json!({"launch-gate-continuation": {"version": 1, "action": {"instance_id": "i-1"}}});
    let err = world.gate().handle(&bad, None).await.unwrap_err();
    assert!(
        err.to_string().contains("continuation event is malformed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_global_timeout_cuts_the_wait_and_the_gate_decides_before_it() {
    // HeartbeatTimeout 30 s: the global timeout is 100 x 30 = 3000 s after the launch. The
    // instance launched 2980 s ago, so 20 s are left, far less than max_wait and the grace
    // period: the gate ends its wait 10 s before the global timeout, and decides itself.
    let port = free_port();
    let mut metadata = common::fast_settings(port);
    metadata["grace_period_seconds"] = json!(600);
    metadata["max_wait_seconds"] = json!(600);
    let world = World::with_metadata(port, Some(metadata.to_string()), 30).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    world.post(
        "/_launch_gate/age",
        &json!({"instance_id": world.instance_id, "seconds": 2980}),
    );
    let hook = SdkAws::new(&world.sdk);
    let settings = launch_gate::aws::LifecycleActions::describe_lifecycle_hook(
        &hook,
        &world.group,
        "launch-gate",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(settings.global_timeout, Duration::from_secs(3000));

    let record = world.gate_once("launch.json").await;

    assert_eq!(
        (record.outcome, record.result),
        (Outcome::Completed, Some(Abandon)),
        "{}",
        record.reason
    );
    assert!(
        matches!(
            record.abandon_reason,
            Some(launch_gate::policy::AbandonReason::DeadlineExceeded { .. })
        ),
        "{:?}",
        record.abandon_reason
    );
    assert!(
        record.time_to_decision_ms < 15_000,
        "{}",
        record.time_to_decision_ms
    );
    assert_eq!(world.action_now()["EndedBy"], "CompleteLifecycleAction");
}
