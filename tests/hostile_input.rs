//! A corpus of malformed and odd events, against the real gate and the AWS emulator with a
//! lifecycle action pending: each gets a clear error naming what is wrong, or is
//! acknowledged and ignored; none panics, and none completes the lifecycle action.

mod common;

use common::World;
use launch_gate::config::GateConfig;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use serde_json::{Value, json};

enum Expect {
    /// An error whose message contains this.
    Error(&'static str),
    /// Acknowledged and ignored.
    Ignored,
}

fn corpus(world: &World) -> Vec<(&'static str, Value, Expect)> {
    let launch = world.event("launch.json");
    let with_detail = |key: &str, value: Value| {
        let mut e = launch.clone();
        e["detail"][key] = value;
        e
    };
    let without_detail = |key: &str| {
        let mut e = launch.clone();
        e["detail"].as_object_mut().unwrap().remove(key);
        e
    };
    let sqs_body = |body: Value| {
        let mut e = world.event("launch-sqs.json");
        e["Records"][0]["body"] = body;
        e
    };
    vec![
        (
            "not an object",
            json!("launch"),
            Expect::Error("not an Auto Scaling lifecycle notification"),
        ),
        ("null", Value::Null, Expect::Error("a JSON null")),
        (
            "empty object",
            json!({}),
            Expect::Error("found an empty object"),
        ),
        (
            "wrong type: token is a number",
            with_detail("LifecycleActionToken", json!(7)),
            Expect::Error("detail.LifecycleActionToken must be a string"),
        ),
        (
            "wrong type: detail is a string",
            {
                let mut e = launch.clone();
                e["detail"] = json!("{}");
                e
            },
            Expect::Error("detail must be an object"),
        ),
        (
            "missing token",
            without_detail("LifecycleActionToken"),
            Expect::Error("detail.LifecycleActionToken is missing"),
        ),
        (
            "missing instance id",
            without_detail("EC2InstanceId"),
            Expect::Error("detail.EC2InstanceId is missing"),
        ),
        (
            "instance id with a path",
            with_detail("EC2InstanceId", json!("i-0123456789abcdef0/../x")),
            Expect::Error("detail.EC2InstanceId is"),
        ),
        (
            "token with control characters",
            with_detail("LifecycleActionToken", json!("abc\u{0}def")),
            Expect::Error("detail.LifecycleActionToken is"),
        ),
        (
            "group name of 300 characters",
            with_detail("AutoScalingGroupName", json!("g".repeat(300))),
            Expect::Error("1 to 255 characters"),
        ),
        (
            "unknown transition",
            with_detail(
                "LifecycleTransition",
                json!("autoscaling:EC2_INSTANCE_LAUNCHING_NOW"),
            ),
            Expect::Ignored,
        ),
        (
            "unknown detail-type",
            {
                let mut e = launch.clone();
                e["detail-type"] = json!("EC2 Instance Launch Successful");
                e
            },
            Expect::Ignored,
        ),
        (
            "another source",
            {
                let mut e = launch.clone();
                e["source"] = json!("custom.app");
                e
            },
            Expect::Error("comes from source \"custom.app\""),
        ),
        (
            "NotificationMetadata of the wrong type",
            with_detail("NotificationMetadata", json!({"health_port": 8000})),
            Expect::Error("detail.NotificationMetadata must be a string"),
        ),
        (
            "SQS: empty body",
            sqs_body(json!("")),
            Expect::Error("Records[0].body is not a JSON object"),
        ),
        (
            "SQS: body is a JSON array",
            sqs_body(json!("[1,2]")),
            Expect::Error("it is a JSON array"),
        ),
        (
            "SQS: body is not a string",
            sqs_body(json!({"a": 1})),
            Expect::Error("SQS event is malformed"),
        ),
        (
            "SQS: SNS envelope without Message",
            sqs_body(json!("{\"Type\": \"Notification\"}")),
            Expect::Error("Records[0].body.Message is missing"),
        ),
        (
            "SNS: record without its fields",
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}),
            Expect::Error("SNS event is malformed"),
        ),
        (
            "Records of another service",
            json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
            Expect::Error("neither an SNS record"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_events_get_clear_errors_and_complete_nothing() {
    let world = World::new(json!({})).await;
    let gate = world.gate();
    for (name, event, expect) in corpus(&world) {
        let result = gate.handle(&event, None).await;
        match (expect, result) {
            (Expect::Error(text), Err(e)) => {
                assert!(e.to_string().contains(text), "{name}: {e}");
                assert_eq!(e.error_type(), "LaunchGate.MalformedEvent", "{name}");
            }
            (Expect::Ignored, Ok(s)) => {
                assert!(
                    s.decisions.is_empty() && s.ignored.len() == 1,
                    "{name}: {s:?}"
                );
            }
            (_, other) => panic!("{name}: unexpected {:?}", other.map(|s| s.decisions.len())),
        }
    }
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_event_for_a_group_the_gate_does_not_serve_is_ignored() {
    let world = World::new(json!({})).await;
    let config = GateConfig::from_lookup(|k| {
        (k == "LAUNCH_GATE_GROUP_NAMES").then(|| "billing-web, admin-web".to_owned())
    })
    .unwrap();
    let gate = Gate::new(
        config,
        HttpProber::new(),
        launch_gate::aws::sdk::SdkAws::new(&world.sdk),
    );

    let summary = gate
        .handle(&world.event("launch.json"), None)
        .await
        .unwrap();

    assert!(summary.decisions.is_empty());
    assert!(matches!(
        &summary.ignored[..],
        [launch_gate::event::Ignored::NotServed { group_name, .. }] if group_name == "shop-web"
    ));
    world.assert_still_held().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_events_copy_of_notification_metadata_is_never_read_however_hostile() {
    // A huge or deeply nested copy in the event: the settings come from the hook as
    // DescribeLifecycleHooks returns it, so the copy is never parsed at all.
    let mut nested = String::new();
    for _ in 0..10_000 {
        nested.push_str("{\"a\":");
    }
    nested.push('1');
    nested.push_str(&"}".repeat(10_000));
    let huge = format!("{{\"health_path\": \"/{}\"}}", "x".repeat(1_000_000));
    for copy in [huge, nested] {
        let world = World::new(json!({})).await;
        let _app = common::DjangoApp::start(world.ip, world.port, common::AppSetup::default());
        let mut event = world.event("launch.json");
        event["detail"]["NotificationMetadata"] = json!(copy);

        let summary = world.gate().handle(&event, None).await.unwrap();

        let r = &summary.decisions[0];
        assert_eq!(
            r.outcome,
            launch_gate::record::Outcome::Completed,
            "{}",
            r.reason
        );
        assert_eq!(
            r.result,
            Some(launch_gate::aws::LifecycleActionResult::Continue)
        );
        let settings = r.settings.as_ref().unwrap();
        assert_eq!(settings.health_port, world.port);
        assert_eq!(settings.health_path, "/health");
    }
}
