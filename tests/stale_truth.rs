//! Decisions that must not outlive the truth, against an emulator that does what AWS does:
//! a completion that took effect while its answer was lost, a slow answer cut by the SDK's
//! attempt timeout, hand-overs delivered late, twice and again by Lambda's retry, and
//! target health that AWS reports as an internal error.

mod common;

use std::time::Duration;

use common::{AppSetup, DjangoApp, TargetGroupSpec, World, WorldSpec, free_port};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use launch_gate::record::Outcome;
use serde_json::json;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn a_continue_whose_answer_was_lost_is_learned_from_auto_scaling() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    // The completion takes effect, then its answer is a 500: the SDK retries and hears
    // "No active Lifecycle Action found".
    world.inject(
        json!({"operation": "CompleteLifecycleAction", "status": 500,
        "code": "InternalFailure", "after_effect": true, "count": 1}),
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::Completed, "{}", record.reason);
    assert_eq!(record.result, Some(Continue));
    assert!(record.reason.contains("took effect"), "{}", record.reason);
    assert_eq!(world.accepted_completions().len(), 1);
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandon_whose_answer_was_lost_is_learned_and_the_breaker_runs() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    world.inject(
        json!({"operation": "CompleteLifecycleAction", "status": 500,
        "code": "InternalFailure", "after_effect": true, "count": 1}),
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::Completed, "{}", record.reason);
    assert_eq!(record.result, Some(Abandon));
    assert!(record.reason.contains("took effect"), "{}", record.reason);
    assert!(record.breaker.is_some(), "the breaker counts it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_completion_is_retried_within_the_invocations_reserve() {
    // The first answer comes after 6 s, past the SDK's 4 s attempt timeout; the call took
    // effect at once. The gate still finishes before its invocation's deadline.
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject(json!({"operation": "CompleteLifecycleAction", "delay_seconds": 6, "count": 1}));
    let deadline = Instant::now() + Duration::from_secs(40);

    let summary = world
        .gate()
        .handle(&world.event("launch.json"), Some(deadline))
        .await
        .unwrap();

    let record = &summary.decisions[0];
    assert_eq!(record.outcome, Outcome::Completed, "{}", record.reason);
    assert_eq!(record.result, Some(Continue));
    assert!(Instant::now() < deadline);
    assert_eq!(world.accepted_completions().len(), 1);
}

const FUNCTION: &str = "launch-gate-tests";

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_over_delivered_late_twice_and_retried_completes_exactly_once() {
    let port = free_port();
    let mut metadata = common::fast_settings(port);
    metadata["grace_period_seconds"] = json!(60);
    metadata["max_wait_seconds"] = json!(120);
    let world = World::with_metadata(port, Some(metadata.to_string()), 60).await;
    let aws = SdkAws::new(&world.sdk).with_function_name(Some(FUNCTION.to_owned()));
    let gate = Gate::new(GateConfig::default(), HttpProber::new(), aws);

    // The app is not up yet: the first invocation (14 s, 4 s of probing) hands over.
    let first = gate
        .handle_invocation(
            &world.event("launch.json"),
            Some(Instant::now() + Duration::from_secs(14)),
            Some("first"),
        )
        .await
        .unwrap();
    assert_eq!(first.decisions[0].outcome, Outcome::Continued);
    let (_, payload) = world.invocations().last().unwrap().clone();
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    // Late: Lambda runs it 5 s later. Twice: two copies at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (a, b) = tokio::join!(
        gate.handle_invocation(&payload, None, Some("copy-1")),
        gate.handle_invocation(&payload, None, Some("copy-2")),
    );
    let records: Vec<_> = [a.unwrap(), b.unwrap()]
        .into_iter()
        .flat_map(|s| s.decisions)
        .collect();
    let outcomes: Vec<_> = records.iter().map(|r| (r.outcome, r.result)).collect();
    assert!(
        outcomes.contains(&(Outcome::Completed, Some(Continue))),
        "{outcomes:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.outcome == Outcome::Completed)
            .count(),
        1,
        "{records:?}"
    );
    assert_eq!(world.accepted_completions().len(), 1);

    // Lambda's retry of the same payload, after the decision: nothing probed.
    let retry = gate
        .handle_invocation(&payload, None, Some("retry"))
        .await
        .unwrap();
    let r = &retry.decisions[0];
    assert_eq!(r.outcome, Outcome::AlreadyDecided, "{}", r.reason);
    assert!(r.probes.is_empty());
    assert_eq!(world.accepted_completions().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internal_error_of_the_load_balancer_is_neither_a_failed_round_nor_a_configuration_error()
 {
    // Three answers `<state> / Elb.InternalError` for the validation target group: more
    // than the unhealthy threshold. The healthy instance is continued all the same.
    for state in ["unavailable", "unhealthy"] {
        let world = World::build(WorldSpec {
            validation: Some(TargetGroupSpec::new("shop-web-validation")),
            ..WorldSpec::default()
        })
        .await;
        let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
        let arn = world.validation_arn.clone().unwrap();
        world.post(
            "/_launch_gate/target-health",
            &json!({"target_group_arn": arn, "state": state, "count": 3}),
        );

        let record = world.gate_once("launch.json").await;

        assert_eq!(
            record.outcome,
            Outcome::Completed,
            "{state}: {}",
            record.reason
        );
        assert_eq!(record.result, Some(Continue), "{state}: {}", record.reason);
    }
}
