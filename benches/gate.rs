//! The gate's benchmark (not a test: it reports, it never fails on a slow machine). Run
//! by `scripts/bench`, against the same real components as the tests:
//!
//! - time to decision with default settings: from the moment the app answers healthy to
//!   `CompleteLifecycleAction` CONTINUE, and from the end of the grace period to ABANDON;
//! - AWS API calls per decision, counted by the emulator, by operation;
//! - the baseline's cost: a broken release beside the running one, with the baseline on
//!   and off: the extra probes and AWS calls;
//! - ECS: the time one hook invocation takes (the function returns after one round: no
//!   waiting inside Lambda, so this is its billed time), and the time from the green task
//!   answering healthy to `SUCCEEDED`;
//! - scale: 200 concurrent gates against an emulator that throttles ELB describe calls
//!   (40, refilled at 10/s) and `DescribeInstances` (50, refilled at 10/s) as AWS does.
//!
//! Prints one JSON document.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{AppSetup, DjangoApp, TargetGroupSpec, World, WorldSpec, free_port};
use futures::future::join_all;
use launch_gate::aws::LifecycleActionResult;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Default settings, but for the port (and, for ABANDON, a short grace period: the
/// figure is the time after it).
fn defaults(port: u16) -> Value {
    json!({"health_port": port})
}

async fn time_to_continue() -> Value {
    let port = free_port();
    let world = World::with_metadata(port, Some(defaults(port).to_string()), 300).await;
    let gate = world.gate();
    let event = world.event("launch.json");
    let gating = tokio::spawn(async move { gate.handle(&event, None).await.unwrap() });
    // The app comes up 3 s into the wait; "healthy" is when it first accepts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ip, app_port) = (world.ip, world.port);
    let app =
        tokio::task::spawn_blocking(move || DjangoApp::start(ip, app_port, AppSetup::default()))
            .await
            .unwrap();
    let healthy_at = Instant::now();
    let summary = gating.await.unwrap();
    let decided = healthy_at.elapsed();
    drop(app);
    let record = &summary.decisions[0];
    json!({
        "result": record.result,
        "after_healthy_ms": decided.as_millis() as u64,
        "goal_ms": 3 * 5_000 + 1_000,
        "probes": record.probe_count,
    })
}

async fn time_to_abandon() -> Value {
    let port = free_port();
    let mut settings = defaults(port);
    settings["grace_period_seconds"] = json!(10);
    let world = World::with_metadata(port, Some(settings.to_string()), 300).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    let started = Instant::now();
    let record = world.gate_once("launch.json").await;
    json!({
        "result": record.result,
        "after_grace_ms": started.elapsed().saturating_sub(Duration::from_secs(10)).as_millis() as u64,
        "cause": record.cause.as_ref().map(|c| c.code),
    })
}

/// API calls of one decision: a group with one target group, a healthy app.
async fn api_calls() -> Value {
    let world = World::build(WorldSpec {
        target_groups: vec![TargetGroupSpec::new("web")],
        overrides: json!({"interval_seconds": 1, "probe_timeout_seconds": 1}),
        ..WorldSpec::default()
    })
    .await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let before = world.calls();
    world
        .gate()
        .handle(&world.event("launch.json"), None)
        .await
        .unwrap();
    let after = world.calls();
    json!(delta(&before, &after))
}

/// The emulator's call counts from `before` to `after`, the operations that grew.
fn delta(before: &Value, after: &Value) -> BTreeMap<String, i64> {
    let mut delta = BTreeMap::new();
    for (op, n) in after.as_object().unwrap() {
        let d = n.as_i64().unwrap() - before.get(op).and_then(Value::as_i64).unwrap_or(0);
        if d > 0 {
            delta.insert(op.clone(), d);
        }
    }
    delta
}

/// A broken release (ALLOWED_HOSTS without the private IP) launched beside a running
/// healthy instance, gated with the baseline `on` or `off`: its calls, probes, and the
/// baseline's probes.
async fn broken_beside_running(baseline: &str) -> Value {
    let world = World::build(WorldSpec {
        capacity: 2,
        overrides: json!({"baseline": baseline}),
        ..WorldSpec::default()
    })
    .await;
    // The first held instance becomes the running release.
    let _old = DjangoApp::start(world.ip, world.port, AppSetup::default());
    assert_eq!(
        world.gate_once("launch.json").await.result,
        Some(LifecycleActionResult::Continue)
    );
    let action = world
        .emulator
        .lifecycle_actions()
        .into_iter()
        .find(|a| a["Pending"] == true)
        .expect("the second launch is held");
    let id = action["EC2InstanceId"].as_str().unwrap().to_owned();
    let out = world
        .ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let ip: IpAddr = out.reservations()[0].instances()[0]
        .private_ip_address()
        .unwrap()
        .parse()
        .unwrap();
    let _new = DjangoApp::start(ip, world.port, AppSetup::allowing("shop.example.com"));
    let before = world.calls();
    let summary = world
        .gate()
        .handle(&common::sample_event("launch.json", &action), None)
        .await
        .unwrap();
    let after = world.calls();
    let record = &summary.decisions[0];
    json!({
        "result": record.result,
        "probes": record.probe_count,
        "baseline_probes": record.baseline.as_ref().map_or(0, |b| b.comparisons),
        "baseline_status": record.baseline.as_ref().map(|b| b.status),
        "calls": delta(&before, &after),
    })
}

async fn baseline_cost() -> Value {
    let on = broken_beside_running("on").await;
    let off = broken_beside_running("off").await;
    let mut extra = BTreeMap::new();
    for (op, n) in on["calls"].as_object().unwrap() {
        let d = n.as_i64().unwrap() - off["calls"].get(op).and_then(Value::as_i64).unwrap_or(0);
        if d != 0 {
            extra.insert(op.clone(), d);
        }
    }
    json!({"on": on, "off": off, "extra_calls": extra})
}

/// One ECS deployment of one green task with the hook's fast settings (interval 1 s,
/// thresholds 2), its invocations delivered here: each invocation's time, and the time
/// from the green task's first healthy answer to `SUCCEEDED`.
async fn ecs_hook() -> Value {
    let world =
        common::EcsWorld::start_delivering(1, json!({}), |_, _| Some(AppSetup::default()), false)
            .await;
    let gate = world.gate();
    world.deploy(2).await;
    let url = world.emulator.url.clone();
    let mut times = Vec::new();
    let mut healthy_at: Option<Instant> = None;
    let mut statuses = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while !statuses.iter().any(|s| s == "SUCCEEDED" || s == "FAILED") && Instant::now() < until {
        let due = common::http_get_json(&format!("{url}/_launch_gate/ecs/hook-invocations"));
        for invocation in due.as_array().cloned().unwrap_or_default() {
            let started = Instant::now();
            let (answer, record) = gate
                .ecs_hook(&invocation["payload"], Default::default())
                .await
                .unwrap();
            times.push(started.elapsed().as_millis() as u64);
            let answer = serde_json::to_value(answer).unwrap();
            if healthy_at.is_none()
                && record
                    .ecs
                    .as_ref()
                    .is_some_and(|e| !e.tasks.is_empty() && e.tasks.iter().all(|t| t.passes > 0))
            {
                healthy_at = Some(started);
            }
            statuses.push(answer["hookStatus"].as_str().unwrap_or("none").to_owned());
            common::http_post_json(
                &format!("{url}/_launch_gate/ecs/hook-response"),
                &json!({"executionId": invocation["executionId"], "response": answer, "error": false}),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    times.sort_unstable();
    json!({
        "answers": statuses,
        "invocation_ms": {"median": times.get(times.len() / 2), "max": times.last()},
        "first_healthy_round_to_succeeded_ms": healthy_at.map(|t| t.elapsed().as_millis() as u64),
    })
}

/// A socket server on `ip:port` answering every request with `status`.
async fn stub(ip: IpAddr, port: u16, status: u16) {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.read(&mut [0u8; 2048]).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
}

async fn scale(gates: usize) -> Value {
    let port = free_port();
    let world = World::build_with_port(
        port,
        WorldSpec {
            overrides: json!({"interval_seconds": 2, "probe_timeout_seconds": 2, "healthy_threshold": 2, "unhealthy_threshold": 2, "grace_period_seconds": 0, "max_wait_seconds": 60}),
            emulator_options: vec!["--throttle"],
            capacity: gates as i32,
            ..WorldSpec::default()
        },
    )
    .await;
    let actions: Vec<Value> = world
        .emulator
        .lifecycle_actions()
        .into_iter()
        .filter(|a| a["Pending"] == true)
        .collect();
    // Every fourth instance answers 400 (the ELB's Host rejected): its verdict is ABANDON.
    let mut expected = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        let id = a["EC2InstanceId"].as_str().unwrap().to_owned();
        let out = world
            .ec2
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let ip: IpAddr = out.reservations()[0].instances()[0]
            .private_ip_address()
            .unwrap()
            .parse()
            .unwrap();
        let broken = i % 4 == 3;
        stub(ip, port, if broken { 400 } else { 200 }).await;
        expected.insert(
            id,
            if broken {
                LifecycleActionResult::Abandon
            } else {
                LifecycleActionResult::Continue
            },
        );
    }
    let before = world.calls();
    let gate = world.gate();
    let started = Instant::now();
    let results = join_all(actions.iter().map(|a| {
        let event = common::sample_event("launch.json", a);
        let gate = &gate;
        async move { gate.handle(&event, None).await }
    }))
    .await;
    let wall = started.elapsed();
    let mut failed = Vec::new();
    let mut wrong = Vec::new();
    let mut breaker_notes = BTreeMap::new();
    for r in &results {
        match r {
            Ok(s) => {
                let d = &s.decisions[0];
                if let Some(b) = &d.breaker {
                    let what = if b.tripped {
                        "tripped".to_owned()
                    } else if let Some(e) = &b.error {
                        format!("error: {}", e.split(':').next().unwrap_or(""))
                    } else if b.tripped_by.is_some() {
                        "deferred to the gate whose ABANDON reached the threshold".to_owned()
                    } else {
                        format!("counted {} of {}", b.abandons.len(), b.threshold)
                    };
                    *breaker_notes.entry(what).or_insert(0) += 1;
                }
                if d.result != Some(expected[&d.instance_id]) {
                    wrong.push(json!({"instance_id": d.instance_id, "outcome": d.outcome, "result": d.result, "reason": d.reason}));
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    let after = world.calls();
    let throttled: i64 = after
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("Throttled:"))
        .map(|(k, v)| v.as_i64().unwrap() - before.get(k).and_then(Value::as_i64).unwrap_or(0))
        .sum();
    json!({
        "gates": actions.len(),
        "wall_ms": wall.as_millis() as u64,
        "failed": failed.len(),
        "breaker_after_each_abandon": breaker_notes,
        "failures": failed,
        "wrong_verdicts": wrong.len(),
        "wrong": wrong,
        "throttled_calls": throttled,
        "calls": after,
    })
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and a benchmark has no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/gate.rs is a benchmark: run it with scripts/bench");
        return;
    }
    let gates: usize = std::env::var("LAUNCH_GATE_BENCH_GATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let report = json!({
        "time_to_continue": time_to_continue().await,
        "time_to_abandon": time_to_abandon().await,
        "api_calls_per_decision": api_calls().await,
        "baseline_cost": baseline_cost().await,
        "ecs_hook": ecs_hook().await,
        "scale": scale(gates).await,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
