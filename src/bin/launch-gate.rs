//! `launch-gate`: the gate's probe and diagnosis from a terminal or a pipeline.
//!
//! ```text
//! launch-gate probe --ip 10.0.1.23 --port 8000 --path /health [--host HOST] [--matcher 200-299] [--timeout 5s] [--json]
//! launch-gate probe --instance-id i-0abc... [--region eu-west-1] [--target-groups]
//! launch-gate rollout --group NAME [--expect N] [--timeout 30m] [--launch-template-version V] [--json]
//! ```
//!
//! Exit status: `probe`: 0 healthy, 1 unhealthy; `rollout`: 0 the rollout succeeded, 1
//! halted, failed or timed out, 4 timed out through an environment outage (launches of the
//! release abandoned because the running release failed the same checks); 2 usage or
//! configuration error; 3 AWS could not be read (after the SDK's retries).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use launch_gate::aws::sdk::SdkAws;
use launch_gate::checks::{self, CheckResult, ChecksError};
use launch_gate::config::GateConfig;
use launch_gate::probe::HttpProber;
use launch_gate::rollout::{Report, RolloutEnd, RolloutError, RolloutRequest};
use launch_gate::time::parse_duration;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "launch-gate",
    version,
    about = "Probe an instance the way the load balancer and launch-gate will"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send the health check as the ELB sends it, and say what is wrong and how to fix it.
    Probe(ProbeArgs),
    /// Wait until the group has N in-service instances of the release that passed the
    /// gate, or the launch-loop breaker halts the release, or the timeout passes; print
    /// each decision as it appears.
    Rollout(RolloutArgs),
    /// Read the group's setup (and the gate function's, with --function) with read-only
    /// calls and print a checklist: each check PASS, WARN or FAIL, what was seen, why it
    /// matters, and the fix; then probe one in-service instance with the gate's checks.
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DoctorArgs {
    /// The Auto Scaling group.
    #[arg(long)]
    group: String,
    /// The gate's function, a name or an ARN: its settings, the EventBridge rules that
    /// target it, and its resource policy.
    #[arg(long)]
    function: Option<String>,
    /// AWS Region (default: the SDK's: AWS_REGION, the profile).
    #[arg(long)]
    region: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RolloutArgs {
    /// The Auto Scaling group.
    #[arg(long)]
    group: String,
    /// In-service instances of the release that must pass the gate (default: the group's
    /// desired capacity).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    expect: Option<u32>,
    /// How long to wait: 90s, 30m, 1h.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    timeout: Duration,
    /// The release: this numbered version of the group's launch template (default: the
    /// version an instance refresh in progress deploys, else the group's).
    #[arg(long)]
    launch_template_version: Option<u32>,
    /// Time between two looks at the group.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// AWS Region (default: the SDK's: AWS_REGION, the profile).
    #[arg(long)]
    region: Option<String>,
    /// Print one JSON document a line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ProbeArgs {
    /// The instance's private IP.
    #[arg(
        long,
        required_unless_present_any = ["instance_id", "ecs_service"],
        conflicts_with = "instance_id"
    )]
    ip: Option<IpAddr>,
    /// Resolve the private IP with DescribeInstances (AWS credentials from the usual chain).
    #[arg(long)]
    instance_id: Option<String>,
    /// Check every running task of an ECS service, CLUSTER/SERVICE, on its ENI's private
    /// IP (ListTasks, DescribeTasks).
    #[arg(long, value_name = "CLUSTER/SERVICE", conflicts_with_all = ["ip", "instance_id"])]
    ecs_service: Option<String>,
    /// AWS Region for --instance-id (default: the SDK's: AWS_REGION, the profile).
    #[arg(long)]
    region: Option<String>,
    /// Also run every health check of the instance's Auto Scaling group's target groups.
    #[arg(long)]
    target_groups: bool,
    /// With --instance-id, do not send the failing checks to the running release beside
    /// the instance (an InService member of its group) to tell a broken release from a
    /// broken environment.
    #[arg(long)]
    no_baseline: bool,
    /// Port of the health endpoint.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Path (and query) of the health endpoint.
    #[arg(long, default_value = "/health")]
    path: String,
    /// Host header (default: <ip>:<port>, as the ELB sends it).
    #[arg(long)]
    host: Option<String>,
    /// Status codes that pass, ELB syntax: 200, 200,204, 200-299.
    #[arg(long, default_value = "200")]
    matcher: String,
    /// Time allowed for the whole probe: 5s, 5, 1m (whole seconds, 1-120).
    #[arg(long, default_value = "5s", value_parser = seconds)]
    timeout: u64,
    /// Text the body must contain.
    #[arg(long)]
    body_contains: Option<String>,
    /// A field the JSON body must hold: path=value, for example status=pass.
    #[arg(long)]
    body_json: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Whole seconds of a duration such as `5s` or `1m`; the gate's settings check the range.
fn seconds(text: &str) -> Result<u64, String> {
    parse_duration(text).map(|d| d.as_secs())
}

enum Failure {
    /// A usage or configuration error: exit 2.
    Config(String),
    /// AWS could not be read, after the SDK's retries: exit 3.
    Aws(launch_gate::aws::AwsError),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let done = match Cli::parse().command {
        Command::Probe(args) => probe(args).await.map(|healthy| u8::from(!healthy)),
        Command::Doctor(args) => doctor(args).await,
        Command::Rollout(args) => rollout(args).await.map(|end| match end {
            RolloutEnd::Succeeded => 0,
            RolloutEnd::Failed => 1,
            RolloutEnd::EnvironmentFailed => 4,
        }),
    };
    match done {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Config(message)) => {
            eprintln!("launch-gate: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Aws(e)) => {
            eprintln!("launch-gate: AWS could not be read: {e}");
            ExitCode::from(3)
        }
    }
}

async fn probe(args: ProbeArgs) -> Result<bool, Failure> {
    if args.target_groups && args.instance_id.is_none() {
        return Err(Failure::Config(
            "--target-groups needs --instance-id (the target groups are the instance's group's)"
                .into(),
        ));
    }
    let config = probe_config(&args)?;
    if let Some(service) = &args.ecs_service {
        return probe_ecs_service(&args, &config, service).await;
    }
    let (ip, found) = match (&args.ip, &args.instance_id) {
        (Some(ip), _) => (*ip, None),
        (None, Some(id)) => {
            let aws = sdk(args.region.clone()).await;
            let found = checks::for_instance(&aws, id, args.target_groups, config.body_limit_bytes)
                .await
                .map_err(|e| match e {
                    ChecksError::Usage(message) => Failure::Config(message),
                    ChecksError::Aws(e) => Failure::Aws(e),
                })?;
            for note in &found.notes {
                eprintln!("launch-gate: {note}");
            }
            (found.ip, Some((aws, id.clone(), found)))
        }
        (None, None) => return Err(Failure::Config("give --ip or --instance-id".into())),
    };
    let prober = HttpProber::new();
    let target_groups = found
        .as_ref()
        .map(|(_, _, f)| f.target_groups.clone())
        .unwrap_or_default();
    let results = checks::run_once(&prober, &config, ip, target_groups).await;
    let healthy = results.iter().all(|r| r.passed);
    // An instance that fails: does the running release beside it fail the same way?
    let baseline = match &found {
        Some((aws, id, found)) if !healthy && !args.no_baseline => {
            let deep = launch_gate::probe::ProbeRequest::deep_health(&config, ip);
            Some(
                checks::against_baseline(&prober, aws, id, found, &deep, &results)
                    .await
                    .map_err(Failure::Aws)?,
            )
        }
        _ => None,
    };
    if args.json {
        println!(
            "{}",
            json!({"healthy": healthy, "checks": results, "baseline": baseline})
        );
    } else {
        print_text(healthy, &results);
        if let Some(b) = &baseline {
            println!("  baseline: {}", b.summary);
            for c in &b.checks {
                println!(
                    "        {}: {} on the running release -> {}",
                    c["check"].as_str().unwrap_or(""),
                    if c["passed"] == true {
                        "passes".to_owned()
                    } else {
                        format!("fails ({})", c["cause"].as_str().unwrap_or("?"))
                    },
                    c["blame"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(healthy)
}

/// The probe's settings from its options, through the gate's own validation, so the CLI
/// accepts exactly what the gate does.
fn probe_config(args: &ProbeArgs) -> Result<GateConfig, Failure> {
    let settings = json!({
        "health_path": args.path,
        "health_port": args.port,
        "matcher": args.matcher,
        "probe_timeout_seconds": args.timeout,
        "interval_seconds": args.timeout,
        "host_header": args.host,
        "body_contains": args.body_contains,
        "body_json": args.body_json,
    });
    GateConfig::default()
        .with_metadata(Some(&settings.to_string()))
        .map_err(|e| Failure::Config(e.to_string().replace("NotificationMetadata key", "option")))
}

/// `--ecs-service CLUSTER/SERVICE`: the deep health check of each running task, on its
/// ENI's IP (awsvpc) or its container instance's IP and host port (bridge, host).
async fn probe_ecs_service(
    args: &ProbeArgs,
    config: &GateConfig,
    service: &str,
) -> Result<bool, Failure> {
    let Some((cluster, name)) = service
        .split_once('/')
        .filter(|(c, n)| !c.is_empty() && !n.is_empty())
    else {
        return Err(Failure::Config(format!(
            "--ecs-service {service}: expected CLUSTER/SERVICE"
        )));
    };
    let aws = sdk(args.region.clone()).await;
    let tasks = checks::ecs_service_tasks(&aws, cluster, name, config.health_port)
        .await
        .map_err(|e| match e {
            ChecksError::Usage(message) => Failure::Config(message),
            ChecksError::Aws(e) => Failure::Aws(e),
        })?;
    let prober = HttpProber::new();
    let mut healthy = true;
    let mut report = Vec::new();
    for task in &tasks {
        let ip = task.ip;
        let port = task.health_port.clone().map_err(Failure::Config)?;
        let config = GateConfig {
            health_port: port,
            ..config.clone()
        };
        let results = checks::run_once(&prober, &config, ip, Vec::new()).await;
        healthy &= results.iter().all(|r| r.passed);
        if !args.json {
            println!("task {} ({ip}:{port}):", task.task_arn);
            print_text(results.iter().all(|r| r.passed), &results);
        }
        report.push(json!({"task": task.task_arn, "ip": ip, "port": port, "checks": results}));
    }
    if args.json {
        println!("{}", json!({"healthy": healthy, "tasks": report}));
    }
    Ok(healthy)
}

fn print_text(healthy: bool, results: &[CheckResult]) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    println!(
        "{}",
        if healthy {
            paint("1;32", "healthy")
        } else {
            paint("1;31", "unhealthy")
        }
    );
    for r in results {
        let mark = if r.passed {
            paint("32", "pass")
        } else {
            paint("31", "FAIL")
        };
        let answer = r.outcome.answer();
        println!(
            "  {mark}  {}: GET {} (Host: {}) -> {answer} in {} ms",
            r.check, r.url, r.host, r.outcome.latency_ms
        );
        if let Some(location) = &r.outcome.location {
            println!("        Location: {location}");
        }
        if let Some(c) = &r.cause {
            println!(
                "        {} {}",
                paint("1", &format!("cause {}:", c.code)),
                c.summary
            );
            println!("        {} {}", paint("1", "fix:"), c.fix);
        }
    }
}

/// `launch-gate doctor`: exit 0 when nothing fails, 1 when a check fails, 2 on a usage
/// error or when AWS cannot be read.
async fn doctor(args: DoctorArgs) -> Result<u8, Failure> {
    use launch_gate::doctor::{Status, examine, exit_status, gate_settings, live_finding};
    let sdk_config = launch_gate::aws::sdk::load_config(args.region.clone()).await;
    let aws = SdkAws::new(&sdk_config);
    let iam = aws_sdk_iam::Client::new(&sdk_config);
    let unreadable =
        |e: launch_gate::aws::AwsError| Failure::Config(format!("AWS could not be read: {e}"));
    let setup = aws
        .doctor_setup(
            &args.group,
            args.function.as_deref(),
            "launch-gate",
            Some(&iam),
        )
        .await
        .map_err(unreadable)?
        .ok_or_else(|| {
            Failure::Config(format!(
                "the Auto Scaling group {} does not exist",
                args.group
            ))
        })?;
    let mut findings = examine(&setup);
    let config = gate_settings(&setup);
    if let Some(id) = setup.in_service.first() {
        let live = match checks::for_instance(&aws, id, true, config.body_limit_bytes).await {
            Ok(found) => {
                let results =
                    checks::run_once(&HttpProber::new(), &config, found.ip, found.target_groups)
                        .await;
                let failures: Vec<(String, String, String)> = results
                    .iter()
                    .filter(|r| !r.passed)
                    .map(|r| match &r.cause {
                        Some(c) => (r.check.clone(), c.summary.clone(), c.fix.clone()),
                        None => (r.check.clone(), r.outcome.answer(), String::new()),
                    })
                    .collect();
                live_finding(id, &failures)
            }
            Err(e) => live_finding(id, &[("the instance".into(), e.to_string(), String::new())]),
        };
        findings.push(live);
    }
    if args.json {
        println!("{}", json!({"group": args.group, "findings": findings}));
    } else {
        for f in &findings {
            let mark = match f.status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{mark}  {:<24} {}", f.check, f.seen);
            if !f.why.is_empty() {
                println!("      why: {}", f.why);
            }
            if !f.fix.is_empty() {
                println!("      fix: {}", f.fix);
            }
        }
    }
    Ok(exit_status(&findings))
}

/// The SDK clients with the gate's retry policy, in `region` if given.
async fn sdk(region: Option<String>) -> SdkAws {
    SdkAws::new(&launch_gate::aws::sdk::load_config(region).await)
}

/// Prints the rollout's lines: text, or one JSON document a line.
struct Printer {
    json: bool,
    start: tokio::time::Instant,
}

impl Report for Printer {
    fn line(&mut self, kind: &str, text: &str, fields: serde_json::Value) {
        let elapsed = self.start.elapsed().as_secs();
        if self.json {
            let mut doc = json!({"event": kind, "elapsed_seconds": elapsed, "message": text});
            if let (Some(d), Some(f)) = (doc.as_object_mut(), fields.as_object()) {
                d.extend(f.clone());
            }
            println!("{doc}");
        } else {
            println!("[{:>4}s] {text}", elapsed);
        }
    }
}

async fn rollout(args: RolloutArgs) -> Result<RolloutEnd, Failure> {
    let aws = sdk(args.region.clone()).await;
    let mut report = Printer {
        json: args.json,
        start: tokio::time::Instant::now(),
    };
    let request = RolloutRequest {
        group: args.group,
        expect: args.expect,
        timeout: args.timeout,
        launch_template_version: args.launch_template_version,
        poll_interval: args.poll_interval,
    };
    launch_gate::rollout::run(&aws, &request, &mut report)
        .await
        .map_err(|e| match e {
            RolloutError::Usage(message) => Failure::Config(message),
            RolloutError::Aws(e) => Failure::Aws(e),
        })
}
