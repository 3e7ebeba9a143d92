//! Blue-green with a new Auto Scaling group per release: the gate serves groups by name
//! prefix and by tag as well as by name, so a group created after the gate was deployed is
//! gated without a redeploy, through its events and through the sweep. A group neither
//! named, prefixed nor tagged is left alone.

mod common;

use common::{AppSetup, DjangoApp, World, sample_event};
use launch_gate::aws::LifecycleActionResult::Continue;
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use launch_gate::record::Outcome;
use serde_json::{Value, json};

/// The gate as the template configures it: the first release's group by name, later
/// releases by the prefix `shop-web-` and by the tag `launch-gate=on`.
fn gate(world: &World) -> common::RealGate {
    let config = GateConfig::from_lookup(|k| match k {
        "LAUNCH_GATE_GROUP_NAMES" => Some("shop-web".into()),
        "LAUNCH_GATE_GROUP_NAME_PREFIXES" => Some("shop-web-".into()),
        "LAUNCH_GATE_GROUP_TAG" => Some("launch-gate=on".into()),
        _ => None,
    })
    .unwrap();
    Gate::new(config, HttpProber::new(), SdkAws::new(&world.sdk))
}

/// Starts the healthy app on the private IP of `action`'s instance.
async fn app_for(world: &World, action: &Value) -> DjangoApp {
    let id = action["EC2InstanceId"].as_str().unwrap();
    let out = world
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let ip = out.reservations()[0].instances()[0]
        .private_ip_address()
        .unwrap()
        .parse()
        .unwrap();
    DjangoApp::start(ip, world.port, AppSetup::default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_created_after_the_gate_is_served_by_prefix_and_by_tag() {
    let world = World::new(json!({})).await;
    let gate = gate(&world);
    for (name, tags) in [
        ("shop-web-v2", vec![]),
        ("checkout-blue", vec![("launch-gate", "on")]),
    ] {
        let action = world.add_group(name, &tags).await;
        let _app = app_for(&world, &action).await;

        let summary = gate
            .handle(&sample_event("launch.json", &action), None)
            .await
            .unwrap();

        let record = &summary.decisions[0];
        assert_eq!(
            (record.outcome, record.result),
            (Outcome::Completed, Some(Continue)),
            "{name}: {}",
            record.reason
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_neither_named_prefixed_nor_tagged_is_left_alone() {
    let world = World::new(json!({})).await;
    let other = world
        .add_group("billing-web", &[("launch-gate", "off")])
        .await;

    let summary = gate(&world)
        .handle(&sample_event("launch.json", &other), None)
        .await
        .unwrap();

    let record = &summary.decisions[0];
    assert_eq!(record.outcome, Outcome::NotServed, "{}", record.reason);
    assert_eq!(record.probe_count, 0);
    let now = common::lifecycle_actions(&world.emulator.url)
        .into_iter()
        .find(|a| a["LifecycleActionToken"] == other["LifecycleActionToken"])
        .unwrap();
    assert_eq!(now["Pending"], true, "{now}");
    assert!(now["Completions"].as_array().unwrap().is_empty(), "{now}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_finds_held_launches_of_groups_created_later() {
    let world = World::new(json!({})).await;
    let by_prefix = world.add_group("shop-web-v3", &[]).await;
    let by_tag = world
        .add_group("checkout-green", &[("launch-gate", "on")])
        .await;
    let _apps = [
        app_for(&world, &by_prefix).await,
        app_for(&world, &by_tag).await,
    ];

    let summary = gate(&world)
        .handle(&world.event("sweep-schedule.json"), None)
        .await
        .unwrap();

    for action in [&by_prefix, &by_tag] {
        let record = summary
            .decisions
            .iter()
            .find(|r| r.instance_id == action["EC2InstanceId"])
            .unwrap_or_else(|| panic!("the sweep gates {action}: {summary:?}"));
        assert_eq!(record.result, Some(Continue), "{}", record.reason);
    }
}
