//! Target-group health end to end: the gate runs each of the group's target groups' own
//! health check as the ELB sends it, and, opt-in, registers the instance in a validation
//! target group and waits for the load balancer's verdict. The emulator's load balancer
//! checks targets for real (every half second here), against the example app on the
//! instance's loopback private IP.

mod common;

use common::{AppSetup, DjangoApp, TargetGroupSpec, World, WorldSpec, free_port};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::record::Outcome;
use serde_json::json;

fn with_target_groups(target_groups: Vec<TargetGroupSpec>) -> WorldSpec {
    WorldSpec {
        target_groups,
        ..WorldSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_target_group_check_passes_and_the_release_continues() {
    let world = World::build(with_target_groups(vec![TargetGroupSpec::new("web")])).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    assert_eq!(record.target_groups.len(), 1);
    let tg = &record.target_groups[0];
    assert_eq!(
        (
            tg.name.as_str(),
            tg.path.as_str(),
            tg.health_check_port.as_str()
        ),
        ("web", "/health", "traffic-port")
    );
    assert!(tg.passing && tg.checks >= 2, "{tg:?}");
    assert!(
        record
            .probes
            .iter()
            .any(|p| p.check == "target_group:web" && p.status == Some(200))
    );
    // The gate reads the group and its target groups once, and never asks the load
    // balancer: the instance is not registered until the hook completes.
    let calls = world.calls();
    assert_eq!(calls["DescribeAutoScalingGroups"], 1, "{calls}");
    assert_eq!(calls["DescribeTargetGroups"], 1, "{calls}");
    assert_eq!(calls["DescribeTargetHealth"], json!(null), "{calls}");
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_400_to_the_target_groups_check_names_the_target_group() {
    let world = World::build(with_target_groups(vec![TargetGroupSpec::new("web")])).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(cause.code, "host_rejected");
    assert_eq!(cause.target_group.as_deref(), Some("web"));
    assert_eq!(
        cause.elb_reason.as_deref(),
        Some("Target.ResponseCodeMismatch")
    );
    assert!(
        record.reason.contains("target group web: GET"),
        "{}",
        record.reason
    );
    assert!(
        record
            .reason
            .contains("Also failing: the deep health check (400)"),
        "{}",
        record.reason
    );
    assert_eq!(world.instance_state().await, "terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_group_checking_another_path_fails_even_when_deep_health_passes() {
    // The target group checks `/`, which the https redirect catches; `/health` is exempt.
    let mut web = TargetGroupSpec::new("web-root");
    web.path = "/";
    let world = World::build(with_target_groups(vec![web])).await;
    let _app = DjangoApp::start(
        world.ip,
        world.port,
        AppSetup {
            ssl_redirect: true,
            ..AppSetup::default()
        },
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    let deep: Vec<_> = record
        .probes
        .iter()
        .filter(|p| p.check == "deep_health")
        .collect();
    assert!(
        !deep.is_empty() && deep.iter().all(|p| p.passed),
        "{deep:?}"
    );
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(cause.code, "redirect_to_https");
    assert_eq!(cause.target_group.as_deref(), Some("web-root"));
    assert_eq!(record.last_failure.as_ref().unwrap().status, Some(301));
    assert!(
        record
            .last_failure
            .as_ref()
            .unwrap()
            .location
            .as_deref()
            .unwrap()
            .starts_with("https://")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_port_and_an_explicit_health_check_port_both_work() {
    // "explicit" has a traffic port where nothing listens, and its health checks go to the
    // app's port explicitly.
    let port = free_port();
    let mut explicit = TargetGroupSpec::new("explicit");
    explicit.port = Some(free_port());
    explicit.health_check_port = Some(port);
    let spec = with_target_groups(vec![TargetGroupSpec::new("traffic"), explicit]);
    let world = World::build_with_port(port, spec).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    let by_name = |n: &str| {
        record
            .target_groups
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("traffic").health_check_port, "traffic-port");
    assert_eq!(by_name("explicit").health_check_port, port.to_string());
    for name in ["traffic", "explicit"] {
        let tg = by_name(name);
        assert!(tg.passing, "{tg:?}");
        assert!(
            tg.target
                .as_deref()
                .unwrap()
                .contains(&format!(":{port}/health")),
            "{tg:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_target_group_is_checked_without_certificate_verification() {
    // The app also serves HTTPS with a self-signed certificate on a second port, as behind
    // an HTTPS target group; the ELB does not verify target certificates, nor does the gate.
    let tls_port = free_port();
    let mut secure = TargetGroupSpec::new("secure");
    secure.port = Some(tls_port);
    secure.protocol = "HTTPS";
    // A target group that speaks HTTPS to the plain HTTP port fails its TLS handshake.
    let mut mismatched = TargetGroupSpec::new("mismatched");
    mismatched.protocol = "HTTPS";
    let world = World::build(with_target_groups(vec![secure.clone()])).await;
    let _http = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let _https = DjangoApp::start(
        world.ip,
        tls_port,
        AppSetup {
            tls: true,
            ..AppSetup::default()
        },
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    let tg = &record.target_groups[0];
    assert_eq!(tg.protocol, "HTTPS");
    assert!(
        tg.passing && tg.target.as_deref().unwrap().starts_with("https://"),
        "{tg:?}"
    );

    let world = World::build(with_target_groups(vec![mismatched])).await;
    let _http = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let record = world.gate_once("launch.json").await;
    assert_eq!(record.result, Some(Abandon));
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(
        (cause.code, cause.target_group.as_deref()),
        ("tls_failed", Some("mismatched"))
    );
    assert_eq!(
        cause.elb_reason.as_deref(),
        Some("Target.FailedHealthChecks")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_target_groups_on_different_ports_one_failing_names_the_failing_one() {
    let admin_port = free_port();
    let mut admin = TargetGroupSpec::new("admin");
    admin.port = Some(admin_port);
    let world = World::build(with_target_groups(vec![TargetGroupSpec::new("web"), admin])).await;
    let _web = DjangoApp::start(world.ip, world.port, AppSetup::default());
    // The admin app on the second port was deployed without the private IP.
    let _admin = DjangoApp::start(
        world.ip,
        admin_port,
        AppSetup::allowing("admin.example.com"),
    );

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon));
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(cause.target_group.as_deref(), Some("admin"));
    assert_eq!(cause.code, "host_rejected");
    assert!(
        cause.summary.contains(&format!(":{admin_port}/health")),
        "{}",
        cause.summary
    );
    let web = record
        .target_groups
        .iter()
        .find(|t| t.name == "web")
        .unwrap();
    assert!(web.passing);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_without_target_groups_says_so() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue));
    assert!(record.target_groups.is_empty());
    assert!(
        record
            .target_groups_note
            .as_deref()
            .unwrap()
            .contains("no target groups")
    );
}

fn with_validation() -> WorldSpec {
    WorldSpec {
        target_groups: vec![TargetGroupSpec::new("web")],
        validation: Some(TargetGroupSpec::new("validate")),
        ..WorldSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_target_group_healthy_continues_and_deregisters() {
    let world = World::build(with_validation()).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    let v = record.validation.as_ref().unwrap();
    assert!(v.registered && v.deregistered, "{v:?}");
    assert_eq!(v.last.as_ref().unwrap().state, "healthy");
    // One DescribeTargetHealth per round, once registered.
    assert_eq!(
        world.calls()["DescribeTargetHealth"],
        json!(v.polls),
        "{v:?}"
    );
    assert!(
        record.reason.contains("validation target group validate"),
        "{}",
        record.reason
    );
    let (state, _) = world
        .target_health(world.validation_arn.as_deref().unwrap())
        .await;
    assert_eq!(state, "draining");
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_target_group_unhealthy_abandons_with_the_elb_reason_and_deregisters() {
    let world = World::build(WorldSpec {
        validation: Some(TargetGroupSpec::new("validate")),
        overrides: json!({"target_group_checks": "off"}),
        ..WorldSpec::default()
    })
    .await;
    // The deep health endpoint is asked with a name Host; only the ELB sends the IP.
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    let mut metadata: serde_json::Value =
        serde_json::from_str(world.action["NotificationMetadata"].as_str().unwrap()).unwrap();
    metadata["host_header"] = json!("shop.example.com");
    let mut event = world.event("launch.json");
    event["detail"]["NotificationMetadata"] = json!(metadata.to_string());

    let summary = world.gate().handle(&event, None).await.unwrap();
    let record = &summary.decisions[0];

    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
    let v = record.validation.as_ref().unwrap();
    let last = v.last.as_ref().unwrap();
    assert_eq!(
        (last.state.as_str(), last.reason.as_deref()),
        ("unhealthy", Some("Target.ResponseCodeMismatch"))
    );
    assert_eq!(
        last.description.as_deref(),
        Some("Health checks failed with these codes: [400]")
    );
    let cause = record.cause.as_ref().unwrap();
    assert_eq!(cause.code, "host_rejected");
    assert_eq!(cause.target_group.as_deref(), Some("validate"));
    assert!(v.deregistered);
    let (state, _) = world
        .target_health(world.validation_arn.as_deref().unwrap())
        .await;
    assert_eq!(state, "draining");
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_target_group_is_deregistered_when_the_gate_fails_midway() {
    let world = World::build(with_validation()).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject_fault("DescribeTargetHealth", -1);

    let err = world
        .gate()
        .handle(&world.event("launch.json"), None)
        .await
        .unwrap_err();

    assert!(
        err.to_string().contains("DescribeTargetHealth failed"),
        "{err}"
    );
    let calls = world.calls();
    assert_eq!(calls["RegisterTargets"], 1, "{calls}");
    assert_eq!(calls["DeregisterTargets"], 1, "{calls}");
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_target_group_without_a_listener_is_a_configuration_error() {
    let mut detached = TargetGroupSpec::new("validate");
    detached.attached = false;
    let world = World::build(WorldSpec {
        validation: Some(detached),
        ..WorldSpec::default()
    })
    .await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::HandedOff);
    assert!(
        record.reason.contains("configuration error"),
        "{}",
        record.reason
    );
    assert!(
        record
            .reason
            .contains("not used by any load balancer listener"),
        "{}",
        record.reason
    );
    assert!(
        record.reason.contains("Fix: attach it to a listener rule"),
        "{}",
        record.reason
    );
    assert!(!record.validation.as_ref().unwrap().registered);
    assert_eq!(world.calls()["RegisterTargets"], json!(null));
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validation_target_group_out_of_the_roles_reach_is_a_configuration_error() {
    // The hook names a validation target group the function's role may not register in
    // (its IAM is scoped to the template's ValidationTargetGroupArn): AWS answers
    // AccessDenied, nothing is registered, and the gate says what to fix.
    let world = World::build(with_validation()).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject_fault_with("RegisterTargets", 403, "AccessDenied", -1);

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.outcome, Outcome::HandedOff, "{}", record.reason);
    assert!(
        record.reason.contains("may not register targets")
            && record.reason.contains("ValidationTargetGroupArn"),
        "{}",
        record.reason
    );
    assert_eq!(record.probe_count, 0);
    let calls = world.calls();
    assert_eq!(calls["RegisterTargets"], 1, "not retried: {calls}");
    assert!(calls.get("DeregisterTargets").is_none(), "{calls}");
    world.assert_still_held().await;
}
