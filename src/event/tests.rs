use super::*;
use serde_json::json;

const LAUNCH: &str = include_str!("../../events/launch.json");
const WARM_POOL: &str = include_str!("../../events/launch-into-warm-pool.json");
const SNS: &str = include_str!("../../events/launch-sns.json");
const SQS: &str = include_str!("../../events/launch-sqs.json");
const TEST: &str = include_str!("../../events/test-notification-sns.json");
const TERMINATING: &str = include_str!("../../events/terminate.json");

fn launch(text: &str) -> LifecycleAction {
    let event: Value = serde_json::from_str(text).unwrap();
    match parse(&event).unwrap().as_slice() {
        [Notification::Launch(a)] => a.clone(),
        other => panic!("expected one launch, got {other:?}"),
    }
}

#[test]
fn eventbridge_launch_has_every_field() {
    let a = launch(LAUNCH);
    assert_eq!(a.instance_id, "i-0123456789abcdef0");
    assert_eq!(a.group_name, "shop-web");
    assert_eq!(a.hook_name, "launch-gate");
    assert_eq!(
        a.token.as_deref(),
        Some("c613620e-07e2-4ed2-a9e2-ef8258911ade")
    );
    assert_eq!(a.origin, Some(Location::EC2));
    assert_eq!(a.destination, Some(Location::AutoScalingGroup));
    assert_eq!(a.delivery, Delivery::EventBridge);
    assert_eq!(a.sent_at.as_deref(), Some("2026-11-21T09:00:00Z"));
    assert!(!a.is_warm_pool_entry());
}

#[test]
fn a_scheduled_event_is_the_sweep() {
    let event: Value =
        serde_json::from_str(include_str!("../../events/sweep-schedule.json")).unwrap();
    assert_eq!(parse(&event).unwrap(), vec![Notification::Sweep]);
}

#[test]
fn warm_pool_entry_is_recognised() {
    assert!(launch(WARM_POOL).is_warm_pool_entry());
}

#[test]
fn sns_and_sqs_carry_the_same_action_without_origin() {
    let sns = launch(SNS);
    let sqs = launch(SQS);
    assert_eq!(sns.delivery, Delivery::Sns);
    assert_eq!(sqs.delivery, Delivery::Sqs);
    for a in [&sns, &sqs] {
        assert_eq!(a.instance_id, "i-0123456789abcdef0");
        assert_eq!(a.origin, None);
        assert_eq!(a.sent_at.as_deref(), Some("2026-11-21T09:00:00.000Z"));
    }
}

#[test]
fn sns_envelope_inside_sqs_is_unwrapped() {
    let sns: Value = serde_json::from_str(SNS).unwrap();
    let envelope = json!({
        "Type": "Notification",
        "Message": sns["Records"][0]["Sns"]["Message"],
    });
    let mut sqs: Value = serde_json::from_str(SQS).unwrap();
    sqs["Records"][0]["body"] = Value::String(envelope.to_string());
    let parsed = parse(&sqs).unwrap();
    assert!(matches!(&parsed[..], [Notification::Launch(a)] if a.delivery == Delivery::Sqs));
}

#[test]
fn test_notification_and_other_transitions_are_ignored() {
    let test: Value = serde_json::from_str(TEST).unwrap();
    assert_eq!(
        parse(&test).unwrap(),
        vec![Notification::Ignored(Ignored::TestNotification {
            group_name: Some("shop-web".into())
        })]
    );
    let term: Value = serde_json::from_str(TERMINATING).unwrap();
    assert!(matches!(
        &parse(&term).unwrap()[..],
        [Notification::Ignored(Ignored::OtherTransition { transition, .. })]
            if transition == "autoscaling:EC2_INSTANCE_TERMINATING"
    ));
}

#[test]
fn malformed_events_name_the_field() {
    let base: Value = serde_json::from_str(LAUNCH).unwrap();
    // (field in detail, new value or None to remove it, expected message)
    let cases: &[(&str, Option<Value>, &str)] = &[
        ("EC2InstanceId", None, "detail.EC2InstanceId is missing"),
        (
            "LifecycleActionToken",
            Some(json!(42)),
            "detail.LifecycleActionToken must be a string, found number",
        ),
        (
            "EC2InstanceId",
            Some(json!("web-1")),
            "detail.EC2InstanceId is \"web-1\"",
        ),
        ("Origin", Some(json!("Moon")), "detail.Origin is \"Moon\""),
        (
            "AutoScalingGroupName",
            Some(json!("")),
            "detail.AutoScalingGroupName is \"\"",
        ),
    ];
    let long_token = "c613620e-07e2-4ed2-a9e2-ef8258911ade!";
    let mut event = base.clone();
    event["detail"]["LifecycleActionToken"] = json!(long_token);
    let err = parse(&event).unwrap_err().to_string();
    assert!(
        err.contains("\"c613620e…\"") && !err.contains("ef8258911ade"),
        "a token is shown truncated: {err}"
    );
    for (field, value, expected) in cases {
        let mut event = base.clone();
        let detail = event["detail"].as_object_mut().unwrap();
        match value {
            Some(v) => detail.insert(field.to_string(), v.clone()),
            None => detail.remove(*field),
        };
        let err = parse(&event).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
    for (key, value, expected) in [
        ("source", json!("aws.ec2"), "source \"aws.ec2\""),
        ("detail", json!([]), "detail must be an object"),
    ] {
        let mut event = base.clone();
        event[key] = value;
        let err = parse(&event).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
}

#[test]
fn odd_shapes_are_errors() {
    for (event, expected) in [
        (json!([]), "a JSON array"),
        (json!({}), "an empty object"),
        (json!({"hello": 1}), "the keys hello"),
        (json!({"Records": []}), "no records"),
        (json!({"Records": {}}), "Records must be an array"),
        (
            json!({"Records": [{"body": "not json"}]}),
            "Records[0].body is not a JSON object",
        ),
    ] {
        let err = parse(&event).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
}

#[test]
fn one_bad_record_fails_the_whole_batch() {
    let mut sqs: Value = serde_json::from_str(SQS).unwrap();
    let good = sqs["Records"][0].clone();
    let mut bad = good.clone();
    bad["body"] = json!("{\"LifecycleTransition\": \"autoscaling:EC2_INSTANCE_LAUNCHING\"}");
    sqs["Records"] = json!([good, bad]);
    let err = parse(&sqs).unwrap_err().to_string();
    assert!(
        err.contains("Records[1].body.EC2InstanceId is missing"),
        "{err}"
    );
}

#[test]
fn a_hand_overs_fields_are_bounded_like_an_events() {
    let hand_over = |action: Value| {
        json!({ CONTINUATION_KEY: {
            "version": 2, "action": action, "started_at_ms": 0,
            "probe_count": 0, "heartbeats": 0, "hop": 1
        }})
    };
    let action = json!({
        "token": "3f1e4b0c-0000-4000-8000-000000000002", "group_name": "shop-web",
        "hook_name": "launch-gate", "instance_id": "i-0123456789abcdef0",
        "transition": "autoscaling:EC2_INSTANCE_LAUNCHING", "notification_metadata": null,
        "origin": null, "destination": null, "sent_at": null, "delivery": "continuation"
    });
    assert!(parse(&hand_over(action.clone())).is_ok());
    for (field, value) in [
        ("transition", json!("x".repeat(2 << 20))),
        ("group_name", json!("g".repeat(256))),
        ("hook_name", json!("")),
        ("token", json!("t".repeat(100))),
        ("notification_metadata", json!("m".repeat(1024))),
        ("sent_at", json!("s".repeat(65))),
    ] {
        let mut a = action.clone();
        a[field] = value;
        let err = parse(&hand_over(a)).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
        // the refused value is never echoed
        assert!(err.len() < 400, "{field}: {}", err.len());
    }
}
