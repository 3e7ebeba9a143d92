//! Whoever may invoke the function is not only Auto Scaling: a deploy or CI role with
//! `lambda:InvokeFunction` can send any payload. Each test here sends what such an invoker
//! could forge (a hand-over payload, an EventBridge-shaped event) to the real gate, against
//! the AWS emulator and the example app under gunicorn, and checks that only AWS's own
//! answers decide: no completion a real lifecycle event with fresh probes would not make,
//! and no probe, tag or completion for an instance Auto Scaling does not hold.

mod common;

use common::{AppSetup, DjangoApp, World, fast_settings, lifecycle_actions, sample_event};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::aws::{CLAIM_TAG, DECISION_TAG};
use launch_gate::record::Outcome;
use serde_json::{Value, json};

/// A hand-over payload as a forger writes it: well formed, every field chosen.
fn forged_continuation(action: Value) -> Value {
    let now_ms = launch_gate::time::epoch_millis();
    json!({"launch-gate-continuation": {
        "version": 1,
        "action": action,
        "started_at_ms": now_ms - 60_000,
        "wait_deadline_ms": now_ms - 1_000,
        "next_heartbeat_ms": now_ms + 600_000,
        "samples": [
            {"at_ms": 10_000, "passed": true},
            {"at_ms": 20_000, "passed": true},
            {"at_ms": 30_000, "passed": true}
        ],
        "probe_count": 3,
        "heartbeats": 0,
        "hop": 1,
    }})
}

/// The `action` of a hand-over payload for the world's held instance.
fn forged_action(world: &World) -> Value {
    json!({
        "token": world.action["LifecycleActionToken"],
        "group_name": world.group,
        "hook_name": "launch-gate",
        "instance_id": world.instance_id,
        "transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "notification_metadata": world.action["NotificationMetadata"],
        "origin": "EC2",
        "destination": "AutoScalingGroup",
        "sent_at": null,
        "delivery": "continuation"
    })
}

/// The world's instance's tags, as EC2 holds them.
async fn instance_tags(world: &World) -> Vec<(String, String)> {
    world
        .own_instance()
        .await
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A broken release: `ALLOWED_HOSTS` lacks the instance's IP, so every check answers 400.
fn broken_app(world: &World) -> DjangoApp {
    DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"))
}

/// Delivers `event` to the default gate and returns the one record it made.
async fn gate_event(world: &World, event: &Value) -> launch_gate::record::DecisionRecord {
    let summary = world.gate().handle(event, None).await.unwrap();
    assert_eq!(summary.decisions.len(), 1, "{summary:?}");
    summary.decisions.into_iter().next().unwrap()
}

/// No `CONTINUE` was accepted for the world's action.
fn assert_not_continued(world: &World) {
    let continued: Vec<Value> = world
        .accepted_completions()
        .into_iter()
        .filter(|c| c["LifecycleActionResult"] == "CONTINUE")
        .collect();
    assert!(continued.is_empty(), "{continued:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_warm_pool_hand_over_without_a_token_is_not_continued_unchecked() {
    // Today: "destination": "WarmPool" made the gate CONTINUE by instance id at once.
    // Auto Scaling says the instance waits in Pending:Wait (it goes in service), so it is
    // probed like any launch, and a broken release is abandoned.
    let world = World::new(json!({})).await;
    let _app = broken_app(&world);
    let mut action = forged_action(&world);
    action["token"] = Value::Null;
    action["destination"] = json!("WarmPool");
    let payload = forged_continuation(action);

    let record = gate_event(&world, &payload).await;

    assert_not_continued(&world);
    assert!(record.probe_count > 0, "{}", record.reason);
    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_passing_rounds_and_a_past_deadline_do_not_continue() {
    // Today: three carried passing rounds and a wait deadline in the past made the gate
    // CONTINUE from the payload alone. Only rounds probed by this invocation count.
    let world = World::new(json!({})).await;
    let _app = broken_app(&world);
    let payload = forged_continuation(forged_action(&world));

    let record = gate_event(&world, &payload).await;

    assert_not_continued(&world);
    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
    assert!(record.probe_count > 3, "{}", record.probe_count);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_shadow_mode_in_a_hand_over_does_not_continue_a_failing_instance() {
    // Today: the payload's copy of NotificationMetadata put the gate in shadow mode. The
    // settings come from the hook, as DescribeLifecycleHooks returns it.
    let world = World::new(json!({})).await;
    let _app = broken_app(&world);
    let mut metadata = fast_settings(world.port);
    metadata["mode"] = json!("shadow");
    let mut action = forged_action(&world);
    action["notification_metadata"] = json!(metadata.to_string());
    let mut payload = forged_continuation(action);
    payload["launch-gate-continuation"]["samples"] = json!([]);

    let record = gate_event(&world, &payload).await;

    assert_not_continued(&world);
    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
    assert_eq!(record.verdict, Some(Abandon));
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_shadow_mode_in_an_event_does_not_continue_a_failing_instance() {
    // The same claim in an EventBridge-shaped event: the event's NotificationMetadata is a
    // copy, and only the hook's own counts.
    let world = World::new(json!({})).await;
    let _app = broken_app(&world);
    let mut metadata = fast_settings(world.port);
    metadata["mode"] = json!("shadow");
    let mut event = world.event("launch.json");
    event["detail"]["NotificationMetadata"] = json!(metadata.to_string());

    let record = gate_event(&world, &event).await;

    assert_not_continued(&world);
    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
}

/// Adds a second launch hook (another team's, for example CodeDeploy's) to the world's
/// group and launches one more instance, held by both hooks. Returns that instance's
/// action of the other hook.
async fn launch_held_by_another_hook(world: &World) -> Value {
    world
        .autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(&world.group)
        .lifecycle_hook_name("codedeploy-launch")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .heartbeat_timeout(600)
        .default_result("ABANDON")
        .notification_metadata(fast_settings(world.port).to_string())
        .send()
        .await
        .unwrap();
    world
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&world.group)
        .desired_capacity(2)
        .send()
        .await
        .unwrap();
    world
        .emulator
        .lifecycle_actions()
        .into_iter()
        .find(|a| a["LifecycleHookName"] == "codedeploy-launch" && a["Pending"] == true)
        .expect("the new launch is held by the other hook")
}

async fn private_ip(world: &World, instance_id: &str) -> std::net::IpAddr {
    let out = world
        .ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .private_ip_address()
        .unwrap()
        .parse()
        .unwrap()
}

/// Delivers `payload(world, other action)` for another team's held launch (its app
/// healthy), and asserts that its action is untouched and nothing was probed.
async fn assert_other_hook_untouched(payload: fn(&World, &Value) -> Value) {
    let world = World::new(json!({})).await;
    let other = launch_held_by_another_hook(&world).await;
    let instance_id = other["EC2InstanceId"].as_str().unwrap();
    let ip = private_ip(&world, instance_id).await;
    let _app = DjangoApp::start(ip, world.port, AppSetup::default());

    let summary = world
        .gate()
        .handle(&payload(&world, &other), None)
        .await
        .unwrap();

    let now = lifecycle_actions(&world.emulator.url)
        .into_iter()
        .find(|a| a["LifecycleActionToken"] == other["LifecycleActionToken"])
        .unwrap();
    assert_eq!(now["Pending"], true, "{now}");
    assert!(now["Completions"].as_array().unwrap().is_empty(), "{now}");
    assert!(
        summary.decisions.iter().all(|d| d.probe_count == 0),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_teams_hook_named_in_a_hand_over_is_not_completed() {
    assert_other_hook_untouched(|world, other| {
        let mut action = forged_action(world);
        action["hook_name"] = json!("codedeploy-launch");
        action["instance_id"] = other["EC2InstanceId"].clone();
        action["token"] = Value::Null;
        forged_continuation(action)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_teams_hook_named_in_an_event_is_not_completed() {
    // The EventBridge rule used to match every launch hook of the group: a CodeDeploy or
    // bootstrap hook's event reached the gate, which completed it.
    assert_other_hook_untouched(|_, other| sample_event("launch.json", other)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_the_group_does_not_hold_is_not_probed_tagged_or_completed() {
    // A running instance outside the group (another team's), named in an event of a
    // served group with a made-up token.
    let world = World::new(json!({})).await;
    let outsider = world
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .subnet_id(world.own_instance().await.subnet_id().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    let outsider = outsider.instances()[0].instance_id().unwrap().to_owned();
    let ip = private_ip(&world, &outsider).await;
    let _app = DjangoApp::start(ip, world.port, AppSetup::default());
    let mut event = world.event("launch.json");
    event["detail"]["EC2InstanceId"] = json!(outsider);
    event["detail"]["LifecycleActionToken"] = json!("3f1e4b0c-0000-4000-8000-000000000001");

    let record = gate_event(&world, &event).await;

    assert_eq!(record.probe_count, 0, "{}", record.reason);
    assert_eq!(record.outcome, Outcome::NotHeld);
    // a refused claim reaches no event bus: the claim's names stay in the log record
    assert_eq!(
        world.calls()["PutEvents"].as_u64().unwrap_or(0),
        0,
        "{}",
        world.calls()
    );
    let tags = world
        .ec2
        .describe_tags()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("resource-id")
                .values(&outsider)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .all(|t| !t.key().unwrap_or_default().starts_with("launch-gate:")),
        "{:?}",
        tags.tags()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_made_up_token_is_refused_before_any_probe_or_tag() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let mut event = world.event("launch.json");
    event["detail"]["LifecycleActionToken"] = json!("3f1e4b0c-0000-4000-8000-000000000002");

    let record = gate_event(&world, &event).await;

    assert_eq!(record.probe_count, 0, "{}", record.reason);
    assert_ne!(record.outcome, Outcome::Completed);
    world.assert_still_held().await;
    assert!(
        instance_tags(&world)
            .await
            .iter()
            .all(|(k, _)| k != CLAIM_TAG && k != DECISION_TAG),
        "{:?}",
        instance_tags(&world).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_is_completed_by_the_instance_probed_never_the_claims_token() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Continue), "{}", record.reason);
    let completions = world.accepted_completions();
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["WithToken"], false);
    assert_eq!(
        completions[0]["InstanceId"],
        json!(world.instance_id),
        "{completions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_after_a_continue_neither_probes_nor_rewrites_the_decision() {
    // The first gate continues a healthy instance; the release then breaks (or a second
    // gate sees a flap). The duplicate must not tag the instance ABANDON while it goes in
    // service: `launch-gate rollout` would never count it.
    let world = World::new(json!({})).await;
    let app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let first = world.gate_once("launch.json").await;
    assert_eq!(first.result, Some(Continue), "{}", first.reason);
    drop(app);
    let _broken = broken_app(&world);

    let second = world.gate_once("launch.json").await;

    assert_eq!(second.outcome, Outcome::AlreadyDecided, "{}", second.reason);
    assert_eq!(second.probe_count, 0, "{}", second.reason);
    let decision = instance_tags(&world)
        .await
        .into_iter()
        .find(|(k, _)| k == DECISION_TAG)
        .map(|(_, v)| v);
    assert_eq!(decision.as_deref(), Some("CONTINUE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_beside_another_instances_id_decides_only_the_instance_probed() {
    // Two more instances held: A (its app never starts: broken) and B (healthy). The
    // event carries A's token beside B's id. The gate probes B, and must decide B, not A,
    // whether AWS resolves a token alone or checks it against the instance id (AWS does
    // not document which): the emulator's switch, in both positions, in one world.
    let world = World::new(json!({})).await;
    let mut seen = vec![world.instance_id.clone()];
    for (round, alone) in [(1, false), (2, true)] {
        world.post(
            "/_launch_gate/settings",
            &json!({ "token_resolves_alone": alone }),
        );
        world
            .autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(&world.group)
            .desired_capacity(1 + 2 * round)
            .send()
            .await
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let held = loop {
            let held: Vec<Value> = world
                .emulator
                .lifecycle_actions()
                .into_iter()
                .filter(|a| {
                    a["Pending"] == true && a["AutoScalingGroupName"] == world.group.as_str()
                })
                .filter(|a| !seen.iter().any(|s| a["EC2InstanceId"] == s.as_str()))
                .collect();
            if held.len() == 2 {
                break held;
            }
            assert!(
                std::time::Instant::now() < until,
                "two launches held: {held:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let (a, b) = (&held[0], &held[1]);
        let b_id = b["EC2InstanceId"].as_str().unwrap().to_owned();
        seen.extend([
            a["EC2InstanceId"].as_str().unwrap().to_owned(),
            b_id.clone(),
        ]);
        let b_ip: std::net::IpAddr = world
            .ec2
            .describe_instances()
            .instance_ids(&b_id)
            .send()
            .await
            .unwrap()
            .reservations()[0]
            .instances()[0]
            .private_ip_address()
            .unwrap()
            .parse()
            .unwrap();
        let _b_app = DjangoApp::start(b_ip, world.port, AppSetup::default());
        let mut event = sample_event("launch.json", a);
        event["detail"]["EC2InstanceId"] = json!(b_id);
        let record = gate_event(&world, &event).await;
        let now = |id: &Value| {
            world
                .emulator
                .lifecycle_actions()
                .into_iter()
                .find(|x| &x["EC2InstanceId"] == id)
                .unwrap()
        };
        if alone {
            // The admission's heartbeat resolves A's token alone: admitted. B, the
            // instance probed, is decided on its own health.
            assert_eq!(record.outcome, Outcome::Completed, "{}", record.reason);
            assert_eq!(record.result, Some(Continue), "{}", record.reason);
            assert_eq!(now(&b["EC2InstanceId"])["Result"], "CONTINUE");
        } else {
            // AWS checks the pair: the claim is refused, nothing probed or decided.
            assert_eq!(record.outcome, Outcome::AlreadyDecided, "{}", record.reason);
            assert_eq!(record.probe_count, 0);
            assert_eq!(now(&b["EC2InstanceId"])["Pending"], true);
        }
        // A, never probed, is still held, untouched by any completion.
        let a_now = now(&a["EC2InstanceId"]);
        assert_eq!(a_now["Pending"], true, "alone={alone}: {a_now}");
        assert!(
            a_now["Completions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["Accepted"] != true),
            "{a_now}"
        );
    }
}

/// The function's answer to the world's launch event, as a synchronous invoker gets it.
async fn function_answer(world: &World) -> Value {
    world
        .gate()
        .respond(
            &world.event("launch.json"),
            launch_gate::gate::ecs::Invoked::default(),
        )
        .await
        .unwrap()
}

/// Serves every request at `ip:port` with `response` (a whole HTTP/1.1 response), until
/// dropped.
fn answer_always(
    ip: std::net::IpAddr,
    port: u16,
    response: &'static str,
) -> std::thread::JoinHandle<()> {
    let listener = std::net::TcpListener::bind((ip, port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response.as_bytes());
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_secret_leaves_the_gate() {
    // The app's health answer carries secrets: a 500 whose body names the database's
    // password, an AWS key and a token. The decision event and the invoker's answer carry
    // the cause and the status, never the body; the record's body excerpt is masked.
    let world = World::new(json!({"grace_period_seconds": 0})).await;
    let mut subscriber = common::Subscriber::start(&world.sdk).await;
    let body = "OperationalError: could not connect to postgres://shop:hunter2@db.internal/shop DB_PASSWORD=hunter2 AKIAIOSFODNN7EXAMPLE token=eyJhbGciOi";
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let _server = answer_always(world.ip, world.port, response);
    let answer = function_answer(&world).await;
    let record = &answer["decisions"][0];
    assert_eq!(record["result"], "ABANDON", "{answer}");
    assert_eq!(record["last_failure"]["status"], 500, "{answer}");
    assert!(
        record["last_failure"].get("body_snippet").is_none(),
        "{answer}"
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let decision = loop {
        if let Some(d) = subscriber
            .details("Lifecycle Action Decision")
            .await
            .into_iter()
            .next()
        {
            break d;
        }
        assert!(std::time::Instant::now() < until, "no decision event");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(decision["cause"]["code"], "server_error", "{decision}");
    for secret in ["hunter2", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOi"] {
        assert!(
            !answer.to_string().contains(secret),
            "{secret} in the answer: {answer}"
        );
        assert!(
            !decision.to_string().contains(secret),
            "{secret} in the event: {decision}"
        );
    }
    // The log record keeps the body's start, masked.
    let snippet = launch_gate::record::body_snippet(body);
    assert!(
        snippet.contains("postgres://shop:***@db.internal"),
        "{snippet}"
    );
    assert!(!snippet.contains("hunter2"), "{snippet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redirects_query_never_leaves_the_gate() {
    // A health check answered with a redirect whose query carries an OAuth code.
    let world = World::new(json!({"grace_period_seconds": 0})).await;
    let _server = answer_always(
        world.ip,
        world.port,
        "HTTP/1.1 302 Found\r\nLocation: https://login.example.com/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let answer = function_answer(&world).await;
    let record = &answer["decisions"][0];
    assert_eq!(record["result"], "ABANDON", "{answer}");
    assert_eq!(
        record["last_failure"]["location"], "https://login.example.com/callback?…",
        "{answer}"
    );
    assert!(
        !answer.to_string().contains("SplxlOBeZQQYbYS6WxSbIA"),
        "{answer}"
    );
}
