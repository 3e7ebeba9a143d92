//! Release or environment, end to end: the emulator's group runs the old release in
//! service beside each new launch, the played fleet boots each release's Django app on its
//! private IP, and the gate compares every failing round with the running release.
//!
//! - A database every instance shares goes down: the new launches are held to the wait's
//!   end, abandoned as the environment's failure, one `Environment Unhealthy` event is put
//!   for the outage, the breaker never trips, and `launch-gate rollout` exits 4.
//! - The database comes back during a wait: the new release is continued.
//! - A release that reads its private IP with IMDSv1 on instances that require IMDSv2,
//!   beside the old release that uses the token flow: the release is blamed, early, and
//!   the breaker trips as it always did.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{AppSetup, ImdsClient, Rollout, WorldSpec, migrate_database, text};
use launch_gate::config::GateConfig;
use serde_json::{Value, json};

/// A SQLite database the instances share, as they would share a database server; it goes
/// down when its directory is moved away, and comes back when it is moved back.
struct SharedDatabase {
    _dir: tempfile::TempDir,
    live: PathBuf,
    down: PathBuf,
    path: PathBuf,
}

impl SharedDatabase {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("data");
        std::fs::create_dir(&live).unwrap();
        let path = live.join("db.sqlite3");
        migrate_database(&path);
        Self {
            down: dir.path().join("data.down"),
            _dir: dir,
            live,
            path,
        }
    }

    fn go_down(&self) {
        std::fs::rename(&self.live, &self.down).unwrap();
    }

    fn come_back(&self) {
        std::fs::rename(&self.down, &self.live).unwrap();
    }

    /// Every release's app on this database.
    fn release(&self) -> impl Fn(&str, usize) -> Option<AppSetup> + Send + Sync + 'static {
        let path = self.path.clone();
        move |_, _| {
            Some(AppSetup {
                db_path: Some(path.clone()),
                ..AppSetup::default()
            })
        }
    }
}

/// The hook's fast settings with the wait cut to `max_wait` seconds.
fn world(max_wait: u64) -> WorldSpec {
    WorldSpec {
        overrides: json!({"max_wait_seconds": max_wait}),
        ..WorldSpec::default()
    }
}

/// The `detail_type` events received, once `enough` holds of them (polled every 500 ms,
/// for at most `limit`).
async fn events_until(
    r: &mut Rollout,
    detail_type: &str,
    limit: Duration,
    enough: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = tokio::time::Instant::now() + limit;
    loop {
        r.fleet.check();
        let got = r.events.details(detail_type).await;
        if enough(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "after {limit:?}, {detail_type} events: {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The decision events of launch template version `version`.
fn of_version<'a>(decisions: &'a [Value], version: &str) -> Vec<&'a Value> {
    decisions
        .iter()
        .filter(|d| d["launch_template"]["version"] == version)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_the_running_release_shares_is_waited_out_and_never_trips_the_breaker() {
    let db = SharedDatabase::new();
    let mut r = Rollout::start_spec(world(10), GateConfig::default(), db.release()).await;
    r.new_version().await;
    db.go_down();
    let step = r.rollout_cli(&["--timeout", "40s", "--expect", "2"]);
    r.launch("2", 2).await;

    // Three launches of the new release, each replaced after its ABANDON: more than the
    // breaker's threshold.
    // three launches of version 2 abandoned
    let decisions = events_until(
        &mut r,
        "Lifecycle Action Decision",
        Duration::from_secs(150),
        |d| of_version(d, "2").len() >= 3,
    )
    .await;
    for d in of_version(&decisions, "2") {
        assert_eq!(d["result"], "ABANDON", "{d}");
        assert_eq!(d["cause"]["code"], "environment_unhealthy", "{d}");
        assert!(
            d["cause"]["summary"]
                .as_str()
                .unwrap()
                .contains("(launch template version 1, i-"),
            "{d}"
        );
        // held to the wait's end, never abandoned early
        assert_eq!(d["abandon_reason"]["kind"], "deadline_exceeded", "{d}");
        assert!(d["time_to_decision_ms"].as_u64().unwrap() >= 9_000, "{d}");
        assert_eq!(d["baseline"]["status"], "failed", "{d}");
        assert_eq!(d["baseline"]["launch_template_version"], "1", "{d}");
        assert!(
            d["breaker"]["abandons"].as_array().unwrap().is_empty(),
            "{d}"
        );
    }
    // one event for the outage, not one per launch
    assert_eq!(r.events.details("Environment Unhealthy").await.len(), 1);
    assert!(r.events.details("Rollout Halted").await.is_empty());
    assert!(
        r.group().await.suspended_processes().is_empty(),
        "the breaker tripped on an outage"
    );

    let out = step.await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("through an environment outage, not a failed release"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_database_comes_back_during_the_wait_the_release_is_continued() {
    let db = SharedDatabase::new();
    let mut r = Rollout::start_spec(world(90), GateConfig::default(), db.release()).await;
    r.new_version().await;
    db.go_down();
    r.launch("2", 2).await;
    let outage = events_until(
        &mut r,
        "Environment Unhealthy",
        Duration::from_secs(60),
        |e| !e.is_empty(),
    )
    .await
    .remove(0);
    assert_eq!(outage["baseline"]["launch_template_version"], "1");
    assert_eq!(outage["cause"]["code"], "deep_check_failed");
    db.come_back();

    let decisions = events_until(
        &mut r,
        "Lifecycle Action Decision",
        Duration::from_secs(60),
        |d| !of_version(d, "2").is_empty(),
    )
    .await;
    let d = of_version(&decisions, "2")[0];
    assert_eq!(d["result"], "CONTINUE", "{d}");
    assert!(
        d["baseline"]["environment_rounds"].as_u64().unwrap() >= 1,
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_imdsv1_release_beside_an_imdsv2_one_is_blamed_and_trips_the_breaker() {
    // Both releases run on instances that require IMDSv2. The old one asks with a token;
    // the new one sends a plain GET, is refused with 401, and starts without its IP.
    let release = |version: &str, _: usize| {
        Some(AppSetup {
            imds: Some(if version == "2" {
                ImdsClient::PlainGet
            } else {
                ImdsClient::TokenFlow
            }),
            ..AppSetup::default()
        })
    };
    let config = GateConfig {
        breaker_abandons: 1,
        ..GateConfig::default()
    };
    let mut r = Rollout::start_spec(world(30), config, release).await;
    r.new_version().await;
    r.launch("2", 2).await;

    let decisions = events_until(
        &mut r,
        "Lifecycle Action Decision",
        Duration::from_secs(60),
        |d| !of_version(d, "2").is_empty(),
    )
    .await;
    let d = of_version(&decisions, "2")[0];
    assert_eq!(d["result"], "ABANDON", "{d}");
    assert_eq!(d["cause"]["code"], "host_rejected", "{d}");
    assert!(
        d["cause"]["fix"].as_str().unwrap().contains("IMDSv2"),
        "{d}"
    );
    assert_eq!(d["abandon_reason"]["kind"], "unhealthy_threshold", "{d}");
    assert_eq!(d["baseline"]["status"], "passed", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("(launch template version 1, i-"),
        "{d}"
    );
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("passes the same check (deep_health); the new release fails it"),
        "{d}"
    );
    r.launches_suspended().await;
    assert_eq!(r.events.details("Rollout Halted").await.len(), 1);
    assert!(r.events.details("Environment Unhealthy").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_compares_a_failing_instance_with_the_running_release() {
    let db = SharedDatabase::new();
    let r = Rollout::start_spec(
        WorldSpec {
            capacity: 2,
            ..world(30)
        },
        GateConfig::default(),
        db.release(),
    )
    .await;
    // Version 2 takes one instance's place; the other still runs version 1.
    r.new_version().await;
    r.launch("2", 3).await;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let running = loop {
        let running = r.in_service().await;
        if running.iter().any(|(_, v)| v == "2") && running.iter().any(|(_, v)| v == "1") {
            break running;
        }
        assert!(std::time::Instant::now() < until, "{running:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let new = running.iter().find(|(_, v)| v == "2").unwrap().0.clone();
    let old = running.iter().find(|(_, v)| v == "1").unwrap().0.clone();
    let same = running
        .iter()
        .find(|(id, v)| v == "2" && *id != new)
        .map(|(id, _)| id.clone());
    let probe = |id: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_launch-gate"))
            .args(["probe", "--instance-id", id, "--json", "--port"])
            .arg(r.world.port.to_string())
            .env("AWS_ENDPOINT_URL", &r.world.emulator.url)
            .output()
            .unwrap();
        let doc: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code(), doc)
    };
    db.go_down();
    let (code, doc) = probe(&new);
    assert_eq!(code, Some(1), "{doc}");
    let baseline = &doc["baseline"];
    // only a member of another version: never the other version 2 instance
    assert_eq!(baseline["instance_id"], old.as_str(), "{doc}");
    assert_ne!(baseline["instance_id"].as_str(), same.as_deref(), "{doc}");
    assert_eq!(baseline["checks"][0]["check"], "deep_health", "{doc}");
    assert_eq!(baseline["checks"][0]["blame"], "environment", "{doc}");
    assert!(
        baseline["summary"]
            .as_str()
            .unwrap()
            .ends_with("the environment is unhealthy, not the release"),
        "{doc}"
    );
    db.come_back();
    let (code, doc) = probe(&new);
    assert_eq!(code, Some(0), "{doc}");
    assert!(doc["baseline"].is_null(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_the_same_release_shares_is_the_releases_and_trips_the_breaker() {
    // Every InService member runs version 1, the version launched: a failure they share
    // (the database down) proves nothing about the environment. Each launch is abandoned
    // as the release's, counted, and the breaker stops the loop.
    let db = SharedDatabase::new();
    let mut r = Rollout::start_spec(world(10), GateConfig::default(), db.release()).await;
    db.go_down();
    r.launch("1", 2).await;
    let decisions = events_until(
        &mut r,
        "Lifecycle Action Decision",
        Duration::from_secs(150),
        |d| d.iter().filter(|d| d["result"] == "ABANDON").count() >= 3,
    )
    .await;
    for d in decisions.iter().filter(|d| d["result"] == "ABANDON") {
        assert_ne!(d["cause"]["code"], "environment_unhealthy", "{d}");
        assert_eq!(d["baseline"]["status"], "none", "{d}");
        assert!(
            d["baseline"]["note"]
                .as_str()
                .unwrap()
                .contains("a member of the same release proves nothing"),
            "{d}"
        );
    }
    assert!(r.events.details("Environment Unhealthy").await.is_empty());
    r.launches_suspended().await;
}
