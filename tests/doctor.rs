//! `launch-gate doctor` against the emulator: the setup the template and the deploy guide
//! make (a group with its launch hook, an instance that passed the gate, the function with
//! its EventBridge rule and permission) is all PASS; each mistake, made to that setup,
//! is reported with its FAIL or WARN and its fix; and the exit status says so.

mod common;

use std::process::Command;

use common::{AppSetup, DjangoApp, World};
use serde_json::{Value, json};

const RULE: &str = "launch-gate-lifecycle";

/// The gate's security group, as the template makes it (egress to everything in the VPC),
/// allowed in the instance's security groups on the health port.
async fn gate_security_group(world: &World) -> (String, String) {
    let instance = world.own_instance().await;
    let vpc = instance.vpc_id().unwrap().to_owned();
    let subnet = instance.subnet_id().unwrap().to_owned();
    let gate = world
        .ec2
        .create_security_group()
        .group_name("launch-gate")
        .description("launch-gate")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    // The app's security group, on the instance, allowing the gate on the health port.
    let app = world
        .ec2
        .create_security_group()
        .group_name("shop-web")
        .description("shop-web")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    world
        .ec2
        .modify_instance_attribute()
        .instance_id(instance.instance_id().unwrap())
        .groups(&app)
        .send()
        .await
        .unwrap();
    {
        world
            .ec2
            .authorize_security_group_ingress()
            .group_id(&app)
            .ip_permissions(
                aws_sdk_ec2::types::IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(i32::from(world.port))
                    .to_port(i32::from(world.port))
                    .user_id_group_pairs(
                        aws_sdk_ec2::types::UserIdGroupPair::builder()
                            .group_id(&gate)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    (gate, subnet)
}

/// The function, its rule and its permission, as the template makes them.
async fn deploy_function(world: &World, variables: &[(&str, &str)]) -> String {
    let (gate_group, subnet) = gate_security_group(world).await;
    let iam = aws_sdk_iam::Client::new(&world.sdk);
    let role = iam
        .create_role()
        .role_name("launch-gate")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    // The calls the gate makes, as the template's policy grants them.
    iam.put_role_policy()
        .role_name("launch-gate")
        .policy_name("launch-gate")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
                 "Resource": "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/shop-web"},
                {"Effect": "Allow", "Action": ["autoscaling:Describe*", "ec2:DescribeInstances", "elasticloadbalancing:Describe*"], "Resource": "*"},
                {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "arn:aws:ec2:*:*:instance/*"},
                {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:*:*:function:launch-gate"}
            ]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let lambda = aws_sdk_lambda::Client::new(&world.sdk);
    let mut env = aws_sdk_lambda::types::Environment::builder();
    for (k, v) in variables {
        env = env.variables(*k, *v);
    }
    let function = lambda
        .create_function()
        .function_name("launch-gate")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(role.role().unwrap().arn())
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip_with_bootstrap()))
                .build(),
        )
        .environment(env.build())
        .vpc_config(
            aws_sdk_lambda::types::VpcConfig::builder()
                .subnet_ids(subnet)
                .security_group_ids(gate_group)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = function.function_arn().unwrap().to_owned();
    let events = aws_sdk_eventbridge::Client::new(&world.sdk);
    let rule = events
        .put_rule()
        .name(RULE)
        .event_pattern(
            json!({"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-launch Lifecycle Action"],
                   "detail": {"AutoScalingGroupName": [world.group], "LifecycleHookName": ["launch-gate"]}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(RULE)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("gate")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    lambda
        .add_permission()
        .function_name("launch-gate")
        .statement_id("eventbridge")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .source_arn(rule.rule_arn().unwrap())
        .send()
        .await
        .unwrap();
    arn
}

/// A zip archive holding one file, `bootstrap` (the function's code is never run here).
fn zip_with_bootstrap() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.zip");
    let status = Command::new(common::python())
        .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').writestr('bootstrap', '#!/bin/sh\\n')"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// `launch-gate doctor --group shop-web --function launch-gate --json`: exit status and
/// findings by check.
fn doctor(world: &World) -> (Option<i32>, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_launch-gate"))
        .args([
            "doctor",
            "--group",
            &world.group,
            "--function",
            "launch-gate",
            "--json",
        ])
        .env("AWS_ENDPOINT_URL", &world.emulator.url)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code(),
        doc["findings"].as_array().cloned().unwrap_or_default(),
    )
}

fn status<'a>(findings: &'a [Value], check: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
}

/// A group whose one instance passed the gate and runs the healthy app, and the function.
async fn correct_setup() -> (World, DjangoApp) {
    let world = World::new(json!({})).await;
    // A numbered launch template version: a refresh to it can be rolled back.
    world.use_launch_template_version("1", None).await;
    let app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let record = world.gate_once("launch.json").await;
    assert_eq!(record.outcome, launch_gate::record::Outcome::Completed);
    deploy_function(&world, &[("LAUNCH_GATE_GROUP_NAMES", "shop-web")]).await;
    (world, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_setup_the_guide_makes_is_all_pass() {
    let (world, _app) = correct_setup().await;
    let (code, findings) = doctor(&world);
    let not_pass: Vec<&Value> = findings.iter().filter(|f| f["status"] != "PASS").collect();
    assert!(not_pass.is_empty(), "{not_pass:#?}");
    assert_eq!(code, Some(0));
    assert_eq!(status(&findings, "app.live")["status"], "PASS");
    assert_eq!(status(&findings, "path.rule")["status"], "PASS");
    assert_eq!(status(&findings, "network.reach")["status"], "PASS");
    assert_eq!(status(&findings, "function.permissions")["status"], "PASS");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_may_not_complete_lifecycle_actions_fails() {
    let (world, _app) = correct_setup().await;
    aws_sdk_iam::Client::new(&world.sdk)
        .delete_role_policy()
        .role_name("launch-gate")
        .policy_name("launch-gate")
        .send()
        .await
        .unwrap();
    let (code, findings) = doctor(&world);
    assert_eq!(code, Some(1));
    let f = status(&findings, "function.permissions");
    assert_eq!(f["status"], "FAIL", "{f}");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("autoscaling:CompleteLifecycleAction"),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_security_group_that_shuts_the_gate_out_fails() {
    let (world, _app) = correct_setup().await;
    let instance = world.own_instance().await;
    for group in instance.security_groups() {
        let id = group.group_id().unwrap();
        let rules = world
            .ec2
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .unwrap();
        let permissions = rules.security_groups()[0].ip_permissions().to_vec();
        world
            .ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(permissions))
            .send()
            .await
            .unwrap();
    }
    let (code, findings) = doctor(&world);
    assert_eq!(code, Some(1));
    let f = status(&findings, "network.reach");
    assert_eq!(f["status"], "FAIL", "{f}");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("no ingress from the function"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("authorize-security-group-ingress")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_that_continues_and_a_disabled_rule_fail_with_their_fixes() {
    let (world, _app) = correct_setup().await;
    world
        .autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(&world.group)
        .lifecycle_hook_name("launch-gate")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .default_result("CONTINUE")
        .heartbeat_timeout(20)
        .send()
        .await
        .unwrap();
    aws_sdk_eventbridge::Client::new(&world.sdk)
        .disable_rule()
        .name(RULE)
        .send()
        .await
        .unwrap();
    let (code, findings) = doctor(&world);
    assert_eq!(code, Some(1));
    let hook = status(&findings, "hook.default_result");
    assert_eq!(hook["status"], "FAIL", "{hook}");
    assert!(
        hook["fix"]
            .as_str()
            .unwrap()
            .contains("--default-result ABANDON")
    );
    assert_eq!(
        status(&findings, "hook.heartbeat_timeout")["status"],
        "FAIL"
    );
    assert_eq!(status(&findings, "path.rule")["status"], "FAIL");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_other_mistakes_are_each_found() {
    let (world, app) = correct_setup().await;
    // A CodeDeploy hook on the same group, a suspended Launch process, the group on
    // $Latest, an app that now rejects the load balancer's Host.
    world
        .autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(&world.group)
        .lifecycle_hook_name("CodeDeploy-managed-automatic-launch-deployment-hook")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .default_result("ABANDON")
        .heartbeat_timeout(600)
        .send()
        .await
        .unwrap();
    world
        .autoscaling
        .suspend_processes()
        .auto_scaling_group_name(&world.group)
        .scaling_processes("Launch")
        .send()
        .await
        .unwrap();
    world.use_launch_template_version("$Latest", None).await;
    drop(app);
    let _broken = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    // The function's settings name another group.
    aws_sdk_lambda::Client::new(&world.sdk)
        .update_function_configuration()
        .function_name("launch-gate")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("LAUNCH_GATE_GROUP_NAMES", "checkout")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (code, findings) = doctor(&world);
    assert_eq!(code, Some(1));
    for (check, expected) in [
        ("hook.others", "WARN"),
        ("group.processes", "FAIL"),
        ("rollout.rollback", "WARN"),
        ("function.serves_group", "FAIL"),
        ("app.live", "FAIL"),
    ] {
        let f = status(&findings, check);
        assert_eq!(f["status"], expected, "{check}: {f}");
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{check}: {f}");
    }
    assert!(
        status(&findings, "app.live")["seen"]
            .as_str()
            .unwrap()
            .contains("answered 400"),
        "{findings:#?}"
    );
    assert!(
        status(&findings, "group.processes")["fix"]
            .as_str()
            .unwrap()
            .contains("resume-processes")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_in_service_that_never_passed_the_gate_is_a_warning() {
    // The hook was added after the group launched its first instance: no decision tag.
    let (world, _app) = correct_setup().await;
    let ec2 = &world.ec2;
    ec2.delete_tags()
        .resources(&world.instance_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("launch-gate:decision")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (code, findings) = doctor(&world);
    assert_eq!(code, Some(0));
    let f = status(&findings, "instances.gated");
    assert_eq!(f["status"], "WARN", "{f}");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("start-instance-refresh")
    );
}
