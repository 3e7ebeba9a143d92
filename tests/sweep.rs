//! Lost events: Auto Scaling delivers lifecycle events to EventBridge best effort. The
//! scheduled sweep (`events/sweep-schedule.json`) finds launches of the served groups held
//! in `Pending:Wait` by a served hook that no gate has claimed, and gates them, completing
//! by instance id since no token is known.

mod common;

use common::{AppSetup, DjangoApp, World};
use launch_gate::aws::LifecycleActionResult::Continue;
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::event::Delivery;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use launch_gate::record::Outcome;
use serde_json::json;

fn sweeping_gate(world: &World) -> Gate<HttpProber, SdkAws> {
    let config = GateConfig::from_lookup(|k| {
        (k == "LAUNCH_GATE_GROUP_NAMES").then(|| "shop-web".to_owned())
    })
    .unwrap();
    Gate::new(config, HttpProber::new(), SdkAws::new(&world.sdk))
}

async fn claim_tag(world: &World) -> Option<u64> {
    world
        .own_instance()
        .await
        .tags()
        .iter()
        .find(|t| t.key() == Some(launch_gate::aws::CLAIM_TAG))
        .and_then(|t| t.value())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_whose_event_was_lost_is_found_and_gated_by_instance_id() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    assert_eq!(claim_tag(&world).await, None);

    let summary = sweeping_gate(&world)
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();

    let record = &summary.decisions[0];
    assert_eq!(record.delivery, Delivery::Sweep);
    assert_eq!(
        (record.outcome, record.result),
        (Outcome::Completed, Some(Continue)),
        "{}",
        record.reason
    );
    let completion = &world.accepted_completions()[0];
    assert_eq!(completion["WithToken"], false);
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
    assert!(claim_tag(&world).await.is_some());

    // Nothing is held any more: the next sweep finds nothing.
    let again = sweeping_gate(&world)
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();
    assert!(again.decisions.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_a_gate_works_on_is_left_alone() {
    let world = World::new(json!({"grace_period_seconds": 60})).await;
    // A gate delivered by EventBridge claims the instance when it starts...
    let gate = world.gate();
    let event = world.event("launch.json");
    let delivered = tokio::spawn(async move { gate.handle(&event, None).await });
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while claim_tag(&world).await.is_none() {
        assert!(
            std::time::Instant::now() < until,
            "the gate never claimed the instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // ...so the sweep does not gate it a second time.
    let summary = sweeping_gate(&world)
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();

    assert!(summary.decisions.is_empty(), "{summary:?}");
    delivered.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_served_groups_the_sweep_does_nothing() {
    let world = World::new(json!({})).await;
    let summary = world
        .gate()
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();
    assert!(summary.decisions.is_empty());
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_into_the_warm_pool_whose_event_was_lost_is_swept_too() {
    // Held in Warmed:Pending:Wait, listed by DescribeWarmPool only.
    let world = World::new(json!({})).await;
    let action = world.launch_into_warm_pool().await;

    let summary = sweeping_gate(&world)
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();

    let warm = summary
        .decisions
        .iter()
        .find(|r| r.instance_id == action["EC2InstanceId"])
        .expect("the sweep gates the warm pool's held launch");
    assert_eq!(warm.delivery, Delivery::Sweep);
    assert_eq!(warm.result, Some(Continue), "{}", warm.reason);
    assert_eq!(warm.probe_count, 0);
}
