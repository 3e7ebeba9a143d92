//! What an app sends is clipped where it is read: a decision record stays under CloudWatch
//! Logs' 256 KB event limit and a decision event under EventBridge's 256 KB entry limit,
//! whatever the app answers. Real servers on the instance's address, the real gate, the
//! AWS emulator.

mod common;

use std::net::IpAddr;

use common::World;
use launch_gate::aws::LifecycleActionResult::Abandon;
use launch_gate::publish;
use launch_gate::record::DecisionRecord;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// CloudWatch Logs' limit for one log event, and EventBridge's for one `PutEvents` entry.
const LIMIT: usize = 256 * 1024;

/// Serves `response` to every connection on `ip:port`.
async fn serve(ip: IpAddr, port: u16, response: Vec<u8>) {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
}

fn assert_bounded(record: &DecisionRecord) {
    let line = serde_json::to_string(record).unwrap();
    assert!(line.len() < LIMIT, "record of {} bytes", line.len());
    let detail = publish::decision_detail(record).to_string();
    assert!(
        detail.len() < LIMIT,
        "event detail of {} bytes",
        detail.len()
    );
    assert!(
        record.reason.len() < 4096,
        "reason of {} bytes",
        record.reason.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_kb_location_is_clipped() {
    let world = World::new(json!({})).await;
    let location = format!("https://shop.example.com/{}", "a".repeat(100 * 1024));
    let response = format!(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    serve(world.ip, world.port, response.into_bytes()).await;

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
    assert_bounded(&record);
    let kept = record
        .last_failure
        .as_ref()
        .unwrap()
        .location
        .as_deref()
        .unwrap();
    assert!(kept.len() <= 1100, "{} bytes of Location kept", kept.len());
    assert!(kept.starts_with("https://shop.example.com/aaa"), "{kept}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_mib_health_body_of_check_names_is_clipped() {
    // The largest body the gate reads (body_limit_bytes 1 MiB), all of it failing checks
    // with long names.
    let world = World::new(json!({"body_limit_bytes": 1_048_576})).await;
    let mut checks = serde_json::Map::new();
    let mut i = 0;
    while serde_json::to_string(&checks).unwrap().len() < 1_040_000 {
        checks.insert(
            format!("check-{i:06}-{}", "n".repeat(200)),
            json!({"status": "fail", "detail": "x".repeat(100)}),
        );
        i += 1;
    }
    let body = json!({"status": "fail", "checks": checks}).to_string();
    assert!(body.len() <= 1_048_576, "{}", body.len());
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    serve(world.ip, world.port, response.into_bytes()).await;

    let record = world.gate_once("launch.json").await;

    assert_eq!(record.result, Some(Abandon), "{}", record.reason);
    assert_bounded(&record);
    let cause = record.cause.as_ref().unwrap();
    assert!(cause.summary.contains("check-000000"), "{}", cause.summary);
    assert!(cause.summary.contains("more"), "{}", cause.summary);
}
