//! The doctor's judgement of setups: a correct one is all PASS, each mistake its finding.
use super::*;
use std::time::Duration;

fn hook(name: &str, default_result: &str, heartbeat: u64, metadata: Option<&str>) -> HookView {
    HookView {
        name: name.into(),
        notification_target: None,
        settings: HookSettings {
            heartbeat_timeout: Duration::from_secs(heartbeat),
            global_timeout: Duration::from_secs((heartbeat * 100).min(172_800)),
            default_result: default_result.into(),
            transition: Some(crate::event::LAUNCHING.into()),
            notification_metadata: metadata.map(str::to_owned),
        },
    }
}

fn instance(decision: Option<&str>) -> InstanceInfo {
    InstanceInfo {
        state: "running".into(),
        private_ip: None,
        group_name: Some("shop-web".into()),
        claimed_until: None,
        launch_template: None,
        decision: decision.map(str::to_owned),
        launched_at: None,
    }
}

const RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/launch-gate";

/// What the template and the deploy guide produce.
fn correct() -> Setup {
    Setup {
        group: "shop-web".into(),
        hooks: vec![hook(
            "launch-gate",
            "ABANDON",
            900,
            Some(r#"{"health_port": 8000}"#),
        )],
        template_version: Some("7".into()),
        in_service: vec!["i-1".into()],
        instances: vec![("i-1".into(), instance(Some("CONTINUE")))],
        function: Some(FunctionView {
            arn: "arn:aws:lambda:us-east-1:123456789012:function:launch-gate".into(),
            variables: vec![("LAUNCH_GATE_GROUP_NAMES".into(), "shop-web".into())],
            policy: Some(
                serde_json::json!({"Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "lambda:InvokeFunction",
                    "Condition": {"ArnLike": {"AWS:SourceArn": RULE}}}]})
                .to_string(),
            ),
            event_sources: Vec::new(),
            permissions: Some(vec![(
                "autoscaling:CompleteLifecycleAction".into(),
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/shop-web".into(),
                "allowed".into(),
            )]),
        }),
        rules: vec![RuleView {
            name: "launch-gate".into(),
            arn: RULE.into(),
            state: "ENABLED".into(),
            matches: true,
        }],
        network: Some(NetworkView {
            function_groups: vec![(
                "sg-gate".into(),
                vec![SgRule {
                    protocol: "-1".into(),
                    cidrs: vec!["10.0.0.0/16".into()],
                    ..SgRule::default()
                }],
            )],
            function_cidrs: vec!["10.0.8.0/24".into()],
            instance_id: "i-1".into(),
            instance_ip: Some("10.0.1.23".parse().unwrap()),
            instance_groups: vec![(
                "sg-app".into(),
                vec![SgRule {
                    protocol: "tcp".into(),
                    ports: Some((8000, 8000)),
                    groups: vec!["sg-gate".into()],
                    ..SgRule::default()
                }],
            )],
            ports: Vec::new(),
        }),
        ..Setup::default()
    }
}

fn status_of(setup: &Setup, check: &str) -> (Status, Finding) {
    let f = examine(setup)
        .into_iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no finding {check}"));
    (f.status, f)
}

#[test]
fn the_setup_the_template_makes_is_all_pass() {
    let findings = examine(&correct());
    let not_pass: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .collect();
    assert!(not_pass.is_empty(), "{not_pass:#?}");
    assert_eq!(exit_status(&findings), 0);
    assert!(findings.len() >= 12, "{}", findings.len());
}

/// A mistake made to the correct setup.
type Mistake = Box<dyn Fn(&mut Setup)>;

#[test]
fn each_mistake_is_its_finding_with_a_fix() {
    let cases: Vec<(&str, Status, Mistake)> = vec![
        ("hook.exists", Status::Fail, Box::new(|s| s.hooks.clear())),
        (
            "hook.default_result",
            Status::Fail,
            Box::new(|s| s.hooks[0].settings.default_result = "CONTINUE".into()),
        ),
        (
            // shadow mode with ABANDON: what the gate cannot answer for is terminated
            "hook.default_result",
            Status::Warn,
            Box::new(|s| {
                s.hooks[0].settings.notification_metadata = Some(r#"{"mode": "shadow"}"#.into())
            }),
        ),
        (
            "hook.heartbeat_timeout",
            Status::Fail,
            Box::new(|s| s.hooks[0].settings.heartbeat_timeout = Duration::from_secs(20)),
        ),
        (
            "hook.global_timeout",
            Status::Fail,
            Box::new(|s| s.hooks[0].settings.global_timeout = Duration::from_secs(300)),
        ),
        (
            "hook.metadata",
            Status::Fail,
            Box::new(|s| {
                s.hooks[0].settings.notification_metadata = Some("{\"helth_port\": 1}".into())
            }),
        ),
        (
            "hook.others",
            Status::Warn,
            Box::new(|s| s.hooks.push(hook("codedeploy-hook", "ABANDON", 600, None))),
        ),
        (
            "instances.gated",
            Status::Warn,
            Box::new(|s| {
                s.in_service.push("i-2".into());
                s.instances.push(("i-2".into(), instance(None)));
            }),
        ),
        (
            "path.rule",
            Status::Fail,
            Box::new(|s| s.rules[0].matches = false),
        ),
        (
            "path.rule",
            Status::Fail,
            Box::new(|s| s.rules[0].state = "DISABLED".into()),
        ),
        (
            "path.permission",
            Status::Fail,
            Box::new(|s| s.function.as_mut().unwrap().policy = None),
        ),
        (
            "function.settings",
            Status::Fail,
            Box::new(|s| {
                s.function
                    .as_mut()
                    .unwrap()
                    .variables
                    .push(("LAUNCH_GATE_INTERVAL_SECONDS".into(), "0".into()))
            }),
        ),
        (
            "function.serves_group",
            Status::Fail,
            Box::new(|s| s.function.as_mut().unwrap().variables[0].1 = "checkout".into()),
        ),
        (
            "group.processes",
            Status::Fail,
            Box::new(|s| s.suspended = vec!["Launch".into()]),
        ),
        (
            "rollout.rollback",
            Status::Warn,
            Box::new(|s| s.template_version = Some("$Latest".into())),
        ),
        (
            "network.reach",
            Status::Fail,
            Box::new(|s| s.target_group_ports = vec![443]),
        ),
        (
            "network.reach",
            Status::Warn,
            Box::new(|s| s.network = None),
        ),
    ];
    for (check, expected, mistake) in cases {
        let mut setup = correct();
        mistake(&mut setup);
        let (status, f) = status_of(&setup, check);
        assert_eq!(status, expected, "{check}: {f:#?}");
        assert!(!f.why.is_empty() && !f.fix.is_empty(), "{check}: {f:#?}");
        if expected == Status::Fail {
            assert_eq!(exit_status(&examine(&setup)), 1, "{check}");
        }
    }
}

#[test]
fn the_function_s_policy_is_read_as_iam_does() {
    let allow = |condition: serde_json::Value| {
        serde_json::json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": ["lambda:InvokeFunction"], "Condition": condition}})
        .to_string()
    };
    assert!(policy_allows_events(
        Some(&allow(serde_json::json!({}))),
        RULE
    ));
    assert!(policy_allows_events(
        Some(&allow(
            serde_json::json!({"ArnEquals": {"AWS:SourceArn": RULE}})
        )),
        RULE
    ));
    assert!(!policy_allows_events(
        Some(&allow(
            serde_json::json!({"ArnLike": {"AWS:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/other"}})
        )),
        RULE
    ));
    assert!(!policy_allows_events(Some("not json"), RULE));
    assert!(!policy_allows_events(None, RULE));
}

#[test]
fn the_network_path_is_evaluated_both_ways() {
    let rule = |ports: Option<(i32, i32)>, cidrs: &[&str], groups: &[&str]| SgRule {
        protocol: "tcp".into(),
        ports,
        cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let open = NetworkView {
        function_groups: vec![(
            "sg-gate".into(),
            vec![rule(Some((1, 65535)), &["10.0.0.0/16"], &[])],
        )],
        function_cidrs: vec!["10.0.8.0/24".into()],
        instance_id: "i-1".into(),
        instance_ip: Some("10.0.1.23".parse().unwrap()),
        instance_groups: vec![(
            "sg-app".into(),
            vec![rule(Some((8000, 8000)), &[], &["sg-gate"])],
        )],
        ports: vec![8000],
    };
    assert_eq!(network_finding(&open).status, Status::Pass);
    // ingress by the subnet's CIDR also works
    let mut by_cidr = open.clone();
    by_cidr.instance_groups[0].1 = vec![rule(Some((8000, 8000)), &["10.0.0.0/16"], &[])];
    assert_eq!(network_finding(&by_cidr).status, Status::Pass);
    // the wrong port, and no egress to the instance's VPC CIDR
    let mut closed = open.clone();
    closed.instance_groups[0].1 = vec![rule(Some((80, 80)), &[], &["sg-gate"])];
    let f = network_finding(&closed);
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.seen.contains("no ingress from the function"),
        "{}",
        f.seen
    );
    assert!(
        f.fix
            .contains("--group-id sg-app --protocol tcp --port 8000 --source-group sg-gate")
    );
    let mut no_egress = open.clone();
    no_egress.function_groups[0].1 = vec![rule(Some((443, 443)), &["0.0.0.0/0"], &[])];
    assert!(network_finding(&no_egress).seen.contains("no egress"));
    assert!(cidr_contains("127.0.0.0/8", "127.0.1.4".parse().unwrap()));
    assert!(!cidr_contains("10.0.0.0/16", "10.1.0.1".parse().unwrap()));
    assert!(cidr_contains("fd00::/8", "fd00::1".parse().unwrap()));
}

#[test]
fn an_sqs_or_sns_notification_target_wired_to_the_function_is_a_path() {
    let queue = "arn:aws:sqs:us-east-1:123456789012:launch-gate";
    let mut setup = correct();
    setup.rules.clear();
    setup.hooks[0].notification_target = Some(queue.into());
    assert_eq!(status_of(&setup, "path.rule").0, Status::Fail);
    setup.function.as_mut().unwrap().event_sources = vec![(queue.into(), "Enabled".into())];
    assert_eq!(status_of(&setup, "path.rule").0, Status::Pass);
    let topic = "arn:aws:sns:us-east-1:123456789012:launch-gate";
    setup.hooks[0].notification_target = Some(topic.into());
    setup.function.as_mut().unwrap().policy = Some(
        serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Condition": {"ArnLike": {"AWS:SourceArn": topic}}}]})
        .to_string(),
    );
    assert_eq!(status_of(&setup, "path.rule").0, Status::Pass);
}
