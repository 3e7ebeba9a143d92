//! The end-to-end harness: starts and stops the real components a user would have.
//!
//! - [`Emulator`]: moto in server mode with the project's extension
//!   (`emulator/launch_gate_emulator.py`), on a free loopback port.
//! - [`World`]: an Auto Scaling group in the emulator whose VPC is `127.0.0.0/16`, so each
//!   instance's private IP is a `127.0.1.x` loopback address, with a launch lifecycle hook
//!   and one instance held in `Pending:Wait`.
//! - [`DjangoApp`]: the example app under gunicorn, bound to exactly that address.
//!
//! Python comes from `$LAUNCH_GATE_PYTHON` or the repository's `.venv` (made by
//! `scripts/setup`). Every process is stopped when its handle drops.

#![allow(dead_code)] // each test binary uses a part of the harness
#![allow(unused_imports)] // the parts share the harness's imports

mod django;
mod ecs;
mod emulator;
mod fleet;
mod nginx;
mod rollout;
mod subscriber;
mod world;

pub use django::*;
pub use ecs::*;
pub use emulator::*;
pub use fleet::*;
pub use nginx::*;
pub use rollout::*;
pub use subscriber::*;
pub use world::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::Credentials;
use launch_gate::aws::Instances;
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::gate::Gate;
use launch_gate::probe::HttpProber;
use serde_json::Value;

/// The gate as the Lambda builds it, pointed at the emulator.
pub type RealGate = Gate<HttpProber, SdkAws>;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let path = std::env::var_os("LAUNCH_GATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run scripts/setup first (it makes the .venv with moto, Django and gunicorn)",
        path.display()
    );
    path
}

/// The venv's bin directory (for `cargo-lambda`).
pub fn venv_bin() -> PathBuf {
    python().parent().unwrap().to_path_buf()
}

/// A free TCP port on loopback (the kernel's pick; released for the caller to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops a child process: SIGTERM, then SIGKILL if it lingers.
pub fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the first line a child prints, within `limit`.
fn first_line(child: &mut Child, limit: Duration) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // keep draining so the child never blocks on a full pipe
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    rx.recv_timeout(limit).unwrap_or_default()
}

/// A plain HTTP/1.0 GET on loopback, for the emulator's `/_launch_gate/` views.
pub fn http_get_json(url: &str) -> Value {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{url}: {e}: {response}"))
}

/// A plain HTTP/1.0 POST of `body` on loopback, for the emulator's `/_launch_gate/`
/// controls; the status line and the body.
pub fn http_post_json(url: &str, body: &Value) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let body = body.to_string();
    let mut stream = TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Every lifecycle action the emulator at `url` has held, pending and ended.
pub fn lifecycle_actions(url: &str) -> Vec<Value> {
    http_get_json(&format!("{url}/_launch_gate/lifecycle-actions"))["LifecycleActions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A sample event from `events/` with the fields of `action`, one of the emulator's
/// lifecycle actions, filled in.
pub fn sample_event(sample: &str, action: &Value) -> Value {
    let text = std::fs::read_to_string(repo().join("events").join(sample)).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let a = action;
    let fill = |m: &mut serde_json::Map<String, Value>| {
        for key in [
            "LifecycleActionToken",
            "AutoScalingGroupName",
            "LifecycleHookName",
            "EC2InstanceId",
            "NotificationMetadata",
        ] {
            if m.contains_key(key) {
                m.insert(key.into(), a[key].clone());
            }
        }
        if m.contains_key("Time") {
            m.insert("Time".into(), a["Started"].clone());
        }
    };
    if let Some(detail) = event.get_mut("detail").and_then(Value::as_object_mut) {
        fill(detail);
        event["time"] = Value::String(a["Started"].as_str().unwrap().to_owned());
        event["resources"] = serde_json::json!([a["AutoScalingGroupARN"]]);
    } else if let Some(records) = event.get_mut("Records").and_then(Value::as_array_mut) {
        for r in records {
            let slot = if r.get("Sns").is_some() {
                &mut r["Sns"]["Message"]
            } else {
                &mut r["body"]
            };
            let mut message: Value = serde_json::from_str(slot.as_str().unwrap()).unwrap();
            fill(message.as_object_mut().unwrap());
            *slot = Value::String(message.to_string());
        }
    }
    event
}
