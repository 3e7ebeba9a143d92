//! Every cause the gate names, produced by real servers and read through the built
//! `launch-gate probe` binary: the example Django app in its broken variants under
//! gunicorn, nginx redirecting to https (and the fixed configuration), and small socket
//! servers that never answer, reset, or never end their body. Each test checks the
//! output and the exit status (0 healthy, 1 unhealthy, 2 usage or configuration error).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Output};
use std::time::Duration;

use common::{AppSetup, DjangoApp, Migrations, Nginx, Site, World, free_port};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback address of its own for each test's servers.
fn ip(last: u8) -> IpAddr {
    format!("127.0.3.{last}").parse().unwrap()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_launch-gate"))
        .args(args)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

/// `launch-gate probe --json ...`: the exit status and the document.
fn probe_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["probe", "--json", "--timeout", "2s"];
    all.extend_from_slice(args);
    let out = cli(&all);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), doc)
}

fn target(ip: IpAddr, port: u16) -> Vec<String> {
    vec![
        "--ip".into(),
        ip.to_string(),
        "--port".into(),
        port.to_string(),
    ]
}

fn args<'a>(base: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    base.iter()
        .map(String::as_str)
        .chain(more.iter().copied())
        .collect()
}

fn cause(doc: &Value) -> (&str, &str, &str) {
    let c = &doc["checks"][0]["cause"];
    (
        c["code"].as_str().unwrap_or(""),
        c["summary"].as_str().unwrap_or(""),
        c["fix"].as_str().unwrap_or(""),
    )
}

#[test]
fn healthy_app_exits_zero_and_prints_healthy() {
    let (ip, port) = (ip(1), free_port());
    let _app = DjangoApp::start(ip, port, AppSetup::default());
    let base = target(ip, port);
    let out = cli(&[&["probe"][..], &args(&base, &[])].concat());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("healthy\n"), "{text}");
    assert!(
        text.contains(&format!(
            "GET http://{ip}:{port}/health (Host: {ip}:{port}) -> 200"
        )),
        "{text}"
    );
    // Not a terminal: no colour codes.
    assert!(!text.contains('\u{1b}'), "{text}");
}

#[test]
fn allowed_hosts_without_the_private_ip() {
    let (ip, port) = (ip(2), free_port());
    let _app = DjangoApp::start(ip, port, AppSetup::allowing("shop.example.com"));
    let base = target(ip, port);
    let (code, doc) = probe_json(&args(&base, &[]));
    assert_eq!(code, 1);
    let (c, summary, fix) = cause(&doc);
    assert_eq!(c, "host_rejected");
    assert!(summary.contains("DisallowedHost"), "{summary}");
    assert!(
        fix.contains("ALLOWED_HOSTS") && fix.contains("IMDSv2"),
        "{fix}"
    );
    // The same app answers a name it allows: the problem is the ELB's IP Host header.
    let (code, _) = probe_json(&args(&base, &["--host", "shop.example.com"]));
    assert_eq!(code, 0);
}

#[test]
fn secure_ssl_redirect_catches_a_path_that_is_not_exempt() {
    let (ip, port) = (ip(3), free_port());
    let _app = DjangoApp::start(
        ip,
        port,
        AppSetup {
            ssl_redirect: true,
            ..AppSetup::default()
        },
    );
    let base = target(ip, port);
    let (code, doc) = probe_json(&args(&base, &["--path", "/"]));
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "redirect_to_https");
    assert_eq!(doc["checks"][0]["status"], 301);
    assert_eq!(
        doc["checks"][0]["location"],
        format!("https://{ip}:{port}/")
    );
    // `/health` is in SECURE_REDIRECT_EXEMPT.
    assert_eq!(probe_json(&args(&base, &[])).0, 0);
}

#[test]
fn unapplied_migrations_are_named() {
    let (ip, port) = (ip(4), free_port());
    let _app = DjangoApp::start(
        ip,
        port,
        AppSetup {
            migrations: Migrations::NewestUnapplied,
            ..AppSetup::default()
        },
    );
    let (code, doc) = probe_json(&args(&target(ip, port), &[]));
    assert_eq!(code, 1);
    let (c, summary, fix) = cause(&doc);
    assert_eq!(c, "deep_check_failed");
    assert!(
        summary.contains(
            "answered 503: failing checks: migrations: 1 unapplied (catalog.0002_seed_products)"
        ),
        "{summary}"
    );
    assert!(fix.contains("apply pending migrations"), "{fix}");
}

#[test]
fn pages_that_fail_while_ping_answers() {
    let (ip, port) = (ip(5), free_port());
    let _app = DjangoApp::start(
        ip,
        port,
        AppSetup {
            currency: false,
            ..AppSetup::default()
        },
    );
    let base = target(ip, port);
    assert_eq!(probe_json(&args(&base, &["--path", "/ping"])).0, 0);
    let (code, doc) = probe_json(&args(&base, &["--path", "/"]));
    assert_eq!(code, 1);
    let (c, summary, _) = cause(&doc);
    assert_eq!(c, "server_error");
    assert!(
        summary.contains("answered 500: <!doctype html>"),
        "{summary}"
    );
    // The deep check renders the page, so it fails too, and says which check.
    let (code, doc) = probe_json(&args(&base, &[]));
    assert_eq!(code, 1);
    assert!(
        cause(&doc)
            .1
            .contains("failing checks: home_page: status 500"),
        "{}",
        cause(&doc).1
    );
}

#[test]
fn django_health_check_json_with_the_database_unreachable() {
    let (ip, port) = (ip(6), free_port());
    let _app = DjangoApp::start(
        ip,
        port,
        AppSetup {
            migrations: Migrations::None,
            db_path: Some("/nonexistent-launch-gate-dir/db.sqlite3".into()),
            ..AppSetup::default()
        },
    );
    let (code, doc) = probe_json(&args(&target(ip, port), &["--path", "/ht/?format=json"]));
    assert_eq!(code, 1);
    let (c, summary, _) = cause(&doc);
    assert_eq!(c, "deep_check_failed");
    assert!(summary.contains("answered 500: failing checks: Database(alias='default'): Unavailable: unable to open database file"), "{summary}");
}

#[test]
fn a_body_that_does_not_report_healthy() {
    let (ip, port) = (ip(7), free_port());
    let _app = DjangoApp::start(ip, port, AppSetup::default());
    let base = target(ip, port);
    assert_eq!(
        probe_json(&args(&base, &["--body-json", "status=pass"])).0,
        0
    );
    let (code, doc) = probe_json(&args(
        &base,
        &["--body-json", "checks.database.status=degraded"],
    ));
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "body_mismatch");
    assert!(
        cause(&doc)
            .1
            .contains("the JSON field checks.database.status is \"pass\", not \"degraded\""),
        "{}",
        cause(&doc).1
    );
}

#[test]
fn nginx_redirecting_every_path_and_the_fixed_configuration() {
    let (ip, app_port, proxy_port) = (ip(8), free_port(), free_port());
    let _app = DjangoApp::start(ip, app_port, AppSetup::default());
    let broken = Nginx::start(ip, proxy_port, (ip, app_port), Site::RedirectEverything);
    let (code, doc) = probe_json(&args(&target(ip, proxy_port), &[]));
    assert_eq!(code, 1);
    let (c, summary, fix) = cause(&doc);
    assert_eq!(c, "redirect_to_https");
    assert!(
        summary.contains(&format!("a redirect to https://{ip}/health")),
        "{summary}"
    );
    assert!(fix.contains("nginx"), "{fix}");
    drop(broken);
    let _fixed = Nginx::start(ip, proxy_port, (ip, app_port), Site::Published);
    let (code, doc) = probe_json(&args(&target(ip, proxy_port), &[]));
    assert_eq!(code, 0, "{doc}");
}

#[test]
fn nginx_without_the_host_pass_through_is_a_rejected_host() {
    // The private IP is in ALLOWED_HOSTS, but nginx sends `Host: shop` (its upstream's
    // name) without `proxy_set_header Host $http_host`: Django answers 400.
    let (ip, app_port, proxy_port) = (ip(13), free_port(), free_port());
    let _app = DjangoApp::start(ip, app_port, AppSetup::default());
    let _nginx = Nginx::start(ip, proxy_port, (ip, app_port), Site::PublishedWithoutHost);
    let (code, doc) = probe_json(&args(&target(ip, proxy_port), &[]));
    assert_eq!(code, 1);
    let (c, _, fix) = cause(&doc);
    assert_eq!(c, "host_rejected");
    assert!(fix.contains("proxy_set_header Host $http_host"), "{fix}");
}

/// A server that accepts and then does `behaviour` with each connection.
async fn socket_server<F, Fut>(ip: IpAddr, behaviour: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behaviour(stream));
        }
    });
    addr
}

async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 2048];
    let _ = stream.read(&mut buf).await;
}

async fn probe_addr(addr: SocketAddr) -> (i32, Value) {
    let owned = target(addr.ip(), addr.port());
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        probe_json(&refs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_that_never_answers_is_a_timeout() {
    let addr = socket_server(ip(9), |mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let (code, doc) = probe_addr(addr).await;
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "timeout");
    assert!(
        cause(&doc).1.contains("no complete response within 2 s"),
        "{}",
        cause(&doc).1
    );
    assert!(doc["checks"][0]["latency_ms"].as_u64().unwrap() < 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_is_connection_refused() {
    let port = free_port();
    let (code, doc) = probe_addr(SocketAddr::new(ip(10), port)).await;
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "connection_refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_resets_is_connection_reset() {
    let addr = socket_server(ip(11), |mut s| async move {
        read_head(&mut s).await;
        // SO_LINGER 0: close with RST instead of FIN (a zero linger never blocks the drop,
        // which is what tokio's deprecation warns of).
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    })
    .await;
    let (code, doc) = probe_addr(addr).await;
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "connection_reset");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_body_is_a_timeout_not_a_pass() {
    let addr = socket_server(ip(12), |mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
        while s.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let (code, doc) = probe_addr(addr).await;
    assert_eq!(code, 1);
    assert_eq!(cause(&doc).0, "timeout");
    assert_eq!(doc["checks"][0]["status"], 200);
    assert!(
        cause(&doc).1.contains("no complete body within 2 s"),
        "{}",
        cause(&doc).1
    );
}

#[test]
fn usage_and_configuration_errors_exit_two() {
    for (args, expected) in [
        (vec!["probe"], "--ip"),
        (
            vec!["probe", "--ip", "127.0.3.99", "--matcher", "2xx"],
            "not a status code",
        ),
        (
            vec!["probe", "--ip", "127.0.3.99", "--path", "health"],
            "must start with /",
        ),
        (
            vec!["probe", "--ip", "127.0.3.99", "--timeout", "soon"],
            "not a duration",
        ),
        (
            vec!["probe", "--ip", "127.0.3.99", "--target-groups"],
            "--instance-id",
        ),
        (vec!["launch"], "unrecognized subcommand"),
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_id_and_target_groups_are_resolved_with_aws() {
    let mut web = common::TargetGroupSpec::new("web");
    web.path = "/";
    let world = World::build(common::WorldSpec {
        target_groups: vec![web],
        ..common::WorldSpec::default()
    })
    .await;
    let _app = DjangoApp::start(
        world.ip,
        world.port,
        AppSetup {
            ssl_redirect: true,
            ..AppSetup::default()
        },
    );
    let port = world.port.to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "probe",
            "--json",
            "--instance-id",
            &world.instance_id,
            "--port",
            &port,
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_launch-gate"))
            .args(&args)
            .env("AWS_ENDPOINT_URL", &world.emulator.url)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };

    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&["--target-groups", "--region", "us-east-1"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["passed"], true);
    assert_eq!(checks[1]["check"], "target_group:web");
    assert_eq!(checks[1]["cause"]["code"], "redirect_to_https");
    assert_eq!(
        checks[1]["cause"]["elb_reason"],
        "Target.ResponseCodeMismatch"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_launch-gate"))
        .args(["probe", "--instance-id", "i-0123456789abcdef0"])
        .env("AWS_ENDPOINT_URL", &world.emulator.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("EC2 does not know the instance i-0123456789abcdef0")
    );
}
