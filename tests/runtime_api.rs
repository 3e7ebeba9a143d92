//! The built Lambda binary under the real Lambda Runtime API: `cargo lambda watch`
//! serves the Runtime API (`--only-lambda-apis`, so it does not build anything itself),
//! the test starts the `bootstrap` binary against it with the emulator's endpoint, and
//! `cargo lambda invoke --data-file` delivers a sample event from `events/`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{AppSetup, DjangoApp, World, free_port, repo, stop, venv_bin};
use serde_json::{Value, json};

/// `cargo lambda watch --only-lambda-apis` and the bootstrap binary attached to it.
struct Function {
    runtime_api: Child,
    bootstrap: Child,
    port: u16,
    stdout: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Function {
    fn start(emulator_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let runtime_api = Command::new(venv_bin().join("cargo-lambda"))
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(port.to_string())
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo-lambda from the venv (scripts/setup installs it)");
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "cargo lambda watch did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let stdout = dir.path().join("bootstrap.out");
        let bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "launch-gate")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_ENDPOINT_URL", emulator_url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The ECS world's cluster.
            .env("LAUNCH_GATE_ECS_SERVICES", "shop/*")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            runtime_api,
            bootstrap,
            port,
            stdout,
            _dir: dir,
        }
    }

    /// `cargo lambda invoke --data-file`; the function's JSON response.
    fn invoke(&self, event: &Value) -> Value {
        let out = self.invoke_bytes(event.to_string().as_bytes());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "invoke failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// `cargo lambda invoke` with raw bytes: its exit status and output.
    fn invoke_bytes(&self, bytes: &[u8]) -> std::process::Output {
        let file = self._dir.path().join("raw.json");
        std::fs::write(&file, bytes).unwrap();
        Command::new(venv_bin().join("cargo-lambda"))
            .args([
                "lambda",
                "invoke",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(&file)
            .current_dir(repo())
            .output()
            .unwrap()
    }

    /// The decision records the function wrote to standard output.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["record"] == "launch-gate.decision")
            .collect()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        stop(&mut self.bootstrap);
        stop(&mut self.runtime_api);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_release_continues_through_the_runtime_api() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::default());
    let function = Function::start(&world.emulator.url);

    let response = function.invoke(&world.event("launch.json"));

    assert_eq!(response["decisions"][0]["result"], "CONTINUE", "{response}");
    assert_eq!(world.lifecycle_state().await.as_deref(), Some("InService"));
    let records = function.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_release_is_abandoned_through_the_runtime_api() {
    let world = World::new(json!({})).await;
    let _app = DjangoApp::start(world.ip, world.port, AppSetup::allowing("shop.example.com"));
    let function = Function::start(&world.emulator.url);

    // A batch of two: the real message, and a malformed one. The malformed one alone is
    // reported for SQS to deliver again; the other is gated.
    let mut batch = world.event("launch-sqs.json");
    let mut bad = batch["Records"][0].clone();
    bad["messageId"] = json!("0b8f1c2e-bad0-4000-8000-000000000001");
    bad["body"] = json!("{ not json");
    batch["Records"].as_array_mut().unwrap().push(bad);
    let response = function.invoke(&batch);

    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "0b8f1c2e-bad0-4000-8000-000000000001"}]),
        "{response}"
    );
    let decision = &response["decisions"][0];
    assert_eq!(decision["result"], "ABANDON", "{response}");
    assert_eq!(decision["cause"]["code"], "host_rejected");
    assert_eq!(world.instance_state().await, "terminated");
    assert_eq!(function.records()[0]["cause"]["code"], "host_rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_bytes_are_rejected_by_the_runtime() {
    let world = World::new(json!({})).await;
    let function = Function::start(&world.emulator.url);
    let mut bytes = world.event("launch.json").to_string().into_bytes();
    bytes.splice(10..10, [0xff, 0xfe, 0x80]);

    let out = function.invoke_bytes(&bytes);

    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(function.records().is_empty());
    world.assert_still_held().await;
    // The function is still up and serves the next event.
    let response = function.invoke(&world.event("test-notification-sns.json"));
    assert_eq!(response["ignored"][0]["kind"], "test_notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ecs_deployment_is_gated_through_the_runtime_api() {
    // ECS invokes the function (here through cargo lambda's Runtime API) at POST_SCALE_UP
    // and again after each IN_PROGRESS; the function's JSON answer is what ECS reads.
    let world =
        common::EcsWorld::start_delivering(1, json!({}), |_, _| Some(AppSetup::default()), false)
            .await;
    let function = Function::start(&world.emulator.url);
    let deployment = world.deploy(2).await;
    let mut statuses = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !statuses.iter().any(|s| s == "SUCCEEDED" || s == "FAILED") {
        assert!(
            std::time::Instant::now() < until,
            "{statuses:?} {:?}",
            function.records().last().map(|r| r["reason"].clone())
        );
        let url = world.emulator.url.clone();
        let due = common::http_get_json(&format!("{url}/_launch_gate/ecs/hook-invocations"));
        for invocation in due.as_array().cloned().unwrap_or_default() {
            let answer = function.invoke(&invocation["payload"]);
            statuses.push(answer["hookStatus"].as_str().unwrap_or("none").to_owned());
            let (status, body) = common::http_post_json(
                &format!("{url}/_launch_gate/ecs/hook-response"),
                &json!({"executionId": invocation["executionId"], "response": answer, "error": false}),
            );
            assert!(status.contains(" 200 "), "{status} {body}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(statuses.first().map(String::as_str), Some("IN_PROGRESS"));
    let ended = world
        .ended(&deployment, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(ended.status().map(|s| s.as_str()), Some("SUCCESSFUL"));
    // The sample invocation names a deployment ECS does not know: refused, nothing probed.
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../events/ecs-hook.json")).unwrap();
    let answer = function.invoke(&sample);
    assert_eq!(answer["hookStatus"], "IN_PROGRESS", "{answer}");
    let records = function.records();
    assert!(
        records.iter().all(|r| r["hold"] == "ecs_deployment_hook"),
        "{records:?}"
    );
    let last = records.last().unwrap();
    assert_eq!(last["probe_count"], 0);
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("ECS does not know the service deployment"),
        "{last}"
    );
}
