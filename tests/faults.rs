//! Never stuck, never twice, never fooled: duplicate deliveries, AWS API faults injected
//! in the emulator, an instance terminated while the gate waits, and app-side faults from
//! socket servers on the instance's address, each against the real gate.

mod common;

use std::time::{Duration, Instant};

use common::{AppSetup, DjangoApp, World};
use launch_gate::aws::LifecycleActionResult::{Abandon, Continue};
use launch_gate::record::Outcome;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn two_deliveries_at_once_complete_exactly_once_and_neither_fails() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let (gate, event) = (world.gate(), world.event("launch.json"));

    let (first, second) = tokio::join!(
        gate.handle_invocation(&event, None, Some("invocation-1")),
        gate.handle_invocation(&event, None, Some("invocation-2")),
    );

    let records: Vec<_> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flat_map(|s| s.decisions)
        .collect();
    let decided: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Completed)
        .collect();
    let late: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::AlreadyDecided)
        .collect();
    assert_eq!((decided.len(), late.len()), (1, 1), "{records:?}");
    assert!(
        late[0].reason.contains("No active Lifecycle Action found"),
        "{}",
        late[0].reason
    );
    assert_ne!(decided[0].invocation_id, late[0].invocation_id);
    assert_eq!(world.accepted_completions().len(), 1);
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_are_retried_without_changing_the_verdict() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject_fault_with("DescribeInstances", 400, "RequestLimitExceeded", 3);
    world.inject_fault_with("DescribeLifecycleHooks", 400, "Throttling", 2);
    world.inject_fault_with("CompleteLifecycleAction", 503, "ServiceUnavailable", 2);

    let record = world.gate_once("launch.json").await;
    assert_eq!(
        (record.outcome, record.result),
        (Outcome::Completed, Some(Continue)),
        "{}",
        record.reason
    );
    let calls = world.calls();
    // the harness's own DescribeInstances, the gate's three failures and its success
    assert_eq!(calls["DescribeInstances"], 5, "{calls}");
    assert_eq!(calls["DescribeLifecycleHooks"], 3, "{calls}");
    assert_eq!(calls["CompleteLifecycleAction"], 3, "{calls}");
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_outage_hands_off_and_never_continues_on_a_guess() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    world.inject_fault_with("CompleteLifecycleAction", 500, "InternalFailure", -1);

    let err = world
        .gate()
        .handle(&world.event("launch.json"), None)
        .await
        .unwrap_err();

    assert_eq!(err.error_type(), "LaunchGate.AwsError");
    assert!(
        err.to_string().contains("CompleteLifecycleAction failed"),
        "{err}"
    );
    assert!(world.accepted_completions().is_empty());
    // Left to the hook's DefaultResult (ABANDON) at its heartbeat timeout.
    assert_eq!(
        world.lifecycle_state().await.as_deref(),
        Some("Pending:Wait")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_terminated_while_the_gate_waits_stops_the_gate() {
    // Nothing answers on the instance and the grace period is long: the gate would wait.
    let world = World::new(json!({"grace_period_seconds": 60, "max_wait_seconds": 60})).await;
    let started = Instant::now();
    let gate = world.gate();
    let event = world.event("launch.json");
    let gating = gate.handle(&event, None);
    let terminate = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.terminate_instance().await;
    };

    let (summary, ()) = tokio::join!(gating, terminate);

    let record = &summary.unwrap().decisions[0];
    assert_eq!(record.outcome, Outcome::InstanceGone, "{}", record.reason);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(world.accepted_completions().is_empty());
    assert_eq!(world.action_now()["EndedBy"], "InstanceTerminated");
}

/// App-side faults on the instance's own address: each bounded by the probe timeout and
/// the body limit, each a failed probe with its cause, none stalling the gate.
#[tokio::test(flavor = "multi_thread")]
async fn app_side_faults_are_bounded_and_named() {
    type Behaviour = fn(
        tokio::net::TcpStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let cases: Vec<(&str, Behaviour, &str)> = vec![
        (
            "accepts and never answers",
            |mut s| {
                Box::pin(async move {
                    let _ = s.read(&mut [0u8; 1024]).await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                })
            },
            "timeout",
        ),
        (
            "answers a byte a second",
            |mut s| {
                Box::pin(async move {
                    let _ = s.read(&mut [0u8; 1024]).await;
                    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
                        if s.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            },
            "timeout",
        ),
        (
            "sends an endless body",
            |mut s| {
                Box::pin(async move {
                    let _ = s.read(&mut [0u8; 1024]).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
                    while s.write_all(chunk.as_bytes()).await.is_ok() {}
                })
            },
            "timeout",
        ),
        (
            "resets",
            |mut s| {
                Box::pin(async move {
                    let _ = s.read(&mut [0u8; 1024]).await;
                    #[allow(deprecated)] // a zero linger never blocks the drop
                    let _ = s.set_linger(Some(Duration::ZERO));
                })
            },
            "connection_reset",
        ),
        (
            "sends malformed HTTP",
            |mut s| {
                Box::pin(async move {
                    let _ = s.read(&mut [0u8; 1024]).await;
                    let _ = s.write_all(b"HTTP/1.1 two hundred OK\r\n\r\n").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                })
            },
            "malformed_response",
        ),
    ];
    for (name, behaviour, expected) in cases {
        let world = World::new(json!({"max_wait_seconds": 6, "grace_period_seconds": 60})).await;
        let listener = TcpListener::bind((world.ip, world.port)).await.unwrap();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(behaviour(stream));
            }
        });
        let started = Instant::now();
        let summary = world
            .gate()
            .handle(&world.event("launch.json"), None)
            .await
            .unwrap();
        server.abort();
        let record = &summary.decisions[0];
        assert_eq!(record.result, Some(Abandon), "{name}: {}", record.reason);
        assert_eq!(
            record.cause.as_ref().map(|c| c.code),
            Some(expected),
            "{name}: {}",
            record.reason
        );
        // max_wait 6 s, probe timeout 1 s: the deadline holds.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
        assert!(
            record.probes.iter().all(|p| p.latency_ms <= 1_500),
            "{name}: {:?}",
            record.probes
        );
    }
}
