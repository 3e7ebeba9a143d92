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

/// Every lifecycle action the emulator at `url` has held, pending and ended.
pub fn lifecycle_actions(url: &str) -> Vec<Value> {
    http_get_json(&format!("{url}/_launch_gate/lifecycle-actions"))["LifecycleActions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// moto in server mode with the project's extension.
pub struct Emulator {
    child: Child,
    pub url: String,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The emulator with more options (`--throttle`).
    pub fn start_with(options: &[&str]) -> Self {
        let mut child = Command::new(python())
            .arg(repo().join("emulator/launch_gate_emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            // ELB's health checks every half second, so target health settles fast
            .args(["--elb-interval", "0.5", "--elb-timeout", "1"])
            // As in EC2: a new instance has its private IP while still `pending`.
            .args(["--pending-seconds", "1"])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AWS emulator");
        let line = first_line(&mut child, Duration::from_secs(60));
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127."))
            .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    /// SDK configuration for the emulator: its endpoint, dummy credentials, a fixed region.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            // The gate's own retry policy, with short backoffs so fault tests stay fast.
            .retry_config(
                launch_gate::aws::sdk::retry_config()
                    .with_initial_backoff(Duration::from_millis(20))
                    .with_max_backoff(Duration::from_millis(200)),
            )
            .timeout_config(launch_gate::aws::sdk::timeout_config())
            .load()
            .await
    }

    /// Every lifecycle action the emulator has held, pending and ended.
    pub fn lifecycle_actions(&self) -> Vec<Value> {
        lifecycle_actions(&self.url)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// An Auto Scaling group in the emulator with a launch lifecycle hook and one instance
/// held in `Pending:Wait`.
pub struct World {
    pub emulator: Emulator,
    pub sdk: SdkConfig,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub group: String,
    /// The pending lifecycle action, as the emulator holds it.
    pub action: Value,
    pub instance_id: String,
    pub ip: IpAddr,
    /// The port the instance's app listens on (free on loopback).
    pub port: u16,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// The validation target group's ARN.
    pub validation_arn: Option<String>,
}

/// A target group to create in the world's VPC.
#[derive(Debug, Clone)]
pub struct TargetGroupSpec {
    pub name: &'static str,
    /// The traffic port; `None` is the world's app port.
    pub port: Option<u16>,
    /// `HealthCheckPort`: `None` is `traffic-port`.
    pub health_check_port: Option<u16>,
    pub path: &'static str,
    pub protocol: &'static str,
    pub matcher: &'static str,
    /// Whether a listener of the load balancer forwards to it.
    pub attached: bool,
}

impl TargetGroupSpec {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            port: None,
            health_check_port: None,
            path: "/health",
            protocol: "HTTP",
            matcher: "200",
            attached: true,
        }
    }
}

/// What [`World::build`] creates.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// Merged over [`fast_settings`] into the hook's `NotificationMetadata`.
    pub overrides: Value,
    /// Replaces the metadata entirely when set.
    pub raw_metadata: Option<String>,
    pub heartbeat_timeout: i32,
    /// The group's target groups.
    pub target_groups: Vec<TargetGroupSpec>,
    /// A validation target group; its ARN goes into the metadata.
    pub validation: Option<TargetGroupSpec>,
    /// Options for the emulator (`--throttle`).
    pub emulator_options: Vec<&'static str>,
    /// Instances launched (and held) at once.
    pub capacity: i32,
}

impl Default for WorldSpec {
    fn default() -> Self {
        Self {
            overrides: serde_json::json!({}),
            raw_metadata: None,
            heartbeat_timeout: 300,
            target_groups: Vec::new(),
            validation: None,
            emulator_options: Vec::new(),
            capacity: 1,
        }
    }
}

/// Settings for fast tests, merged into the hook's `NotificationMetadata`.
pub fn fast_settings(port: u16) -> Value {
    serde_json::json!({
        "health_port": port,
        "interval_seconds": 1,
        "probe_timeout_seconds": 1,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
        "grace_period_seconds": 2,
        "max_wait_seconds": 30,
    })
}

impl World {
    /// A world whose hook carries `fast_settings` merged with `overrides`.
    pub async fn new(overrides: Value) -> Self {
        Self::build(WorldSpec {
            overrides,
            ..WorldSpec::default()
        })
        .await
    }

    /// A world with the hook's `NotificationMetadata` and `HeartbeatTimeout` (seconds) as given.
    pub async fn with_metadata(
        port: u16,
        metadata: Option<String>,
        heartbeat_timeout: i32,
    ) -> Self {
        Self::build_with_port(
            port,
            WorldSpec {
                raw_metadata: metadata,
                heartbeat_timeout,
                ..WorldSpec::default()
            },
        )
        .await
    }

    pub async fn build(spec: WorldSpec) -> Self {
        Self::build_with_port(free_port(), spec).await
    }

    pub async fn build_with_port(port: u16, spec: WorldSpec) -> Self {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, Matcher, ProtocolEnum,
        };
        let emulator = Emulator::start_with(&spec.emulator_options);
        let sdk = emulator.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let autoscaling = aws_sdk_autoscaling::Client::new(&sdk);
        let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let vpc = ec2
            .create_vpc()
            .cidr_block("127.0.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
        let mut subnets = Vec::new();
        for (cidr, az) in [
            ("127.0.1.0/24", "us-east-1a"),
            ("127.0.2.0/24", "us-east-1b"),
        ] {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block(cidr)
                .availability_zone(az)
                .send()
                .await
                .unwrap();
            subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_owned());
        }
        // The group's instances live in the first subnet: 127.0.1.x.
        let subnet_id = subnets[0].clone();

        // Target groups, and a load balancer whose listeners forward to the attached ones.
        let mut target_groups = Vec::new();
        let mut validation_arn = None;
        let all: Vec<(bool, TargetGroupSpec)> = spec
            .target_groups
            .iter()
            .map(|t| (false, t.clone()))
            .chain(spec.validation.iter().map(|t| (true, t.clone())))
            .collect();
        let mut load_balancer: Option<String> = None;
        for (i, (is_validation, t)) in all.iter().enumerate() {
            let mut create = elbv2
                .create_target_group()
                .name(t.name)
                .protocol(ProtocolEnum::from(t.protocol))
                .health_check_protocol(ProtocolEnum::from(t.protocol))
                .port(i32::from(t.port.unwrap_or(port)))
                .vpc_id(&vpc_id)
                .health_check_path(t.path)
                .health_check_interval_seconds(5)
                .health_check_timeout_seconds(2)
                .healthy_threshold_count(2)
                .unhealthy_threshold_count(2)
                .matcher(Matcher::builder().http_code(t.matcher).build());
            if let Some(p) = t.health_check_port {
                create = create.health_check_port(p.to_string());
            }
            let created = create.send().await.unwrap();
            let arn = created.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_owned();
            if t.attached {
                if load_balancer.is_none() {
                    let lb = elbv2
                        .create_load_balancer()
                        .name("shop-web")
                        .set_subnets(Some(subnets.clone()))
                        .send()
                        .await
                        .unwrap();
                    load_balancer = Some(
                        lb.load_balancers()[0]
                            .load_balancer_arn()
                            .unwrap()
                            .to_owned(),
                    );
                }
                elbv2
                    .create_listener()
                    .load_balancer_arn(load_balancer.as_deref().unwrap())
                    .protocol(ProtocolEnum::Http)
                    .port(8080 + i as i32)
                    .default_actions(
                        Action::builder()
                            .r#type(ActionTypeEnum::Forward)
                            .target_group_arn(&arn)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            if *is_validation {
                validation_arn = Some(arn);
            } else {
                target_groups.push((t.name.to_owned(), arn));
            }
        }

        let metadata = spec.raw_metadata.clone().or_else(|| {
            let mut metadata = fast_settings(port);
            if let (Some(m), Some(o)) = (metadata.as_object_mut(), spec.overrides.as_object()) {
                m.extend(o.clone());
            }
            if let Some(v) = &validation_arn {
                metadata["validation_target_group_arn"] = Value::String(v.clone());
            }
            Some(metadata.to_string())
        });
        let heartbeat_timeout = spec.heartbeat_timeout;
        ec2.create_launch_template()
            .launch_template_name("shop-web")
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let group = "shop-web".to_owned();
        let hook = "launch-gate".to_owned();
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&group)
            .min_size(0)
            .max_size(250)
            .desired_capacity(0)
            .vpc_zone_identifier(&subnet_id)
            .set_target_group_arns(Some(target_groups.iter().map(|(_, a)| a.clone()).collect()))
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name("shop-web")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut put = autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(&group)
            .lifecycle_hook_name(&hook)
            .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
            .heartbeat_timeout(heartbeat_timeout)
            .default_result("ABANDON");
        if let Some(m) = metadata {
            put = put.notification_metadata(m);
        }
        put.send().await.unwrap();
        autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(&group)
            .desired_capacity(spec.capacity)
            .send()
            .await
            .unwrap();
        let action = emulator
            .lifecycle_actions()
            .into_iter()
            .find(|a| a["Pending"] == true)
            .expect("the launch is held by the hook");
        let instance_id = action["EC2InstanceId"].as_str().unwrap().to_owned();
        let described = ec2
            .describe_instances()
            .instance_ids(&instance_id)
            .send()
            .await
            .unwrap();
        let ip = described.reservations()[0].instances()[0]
            .private_ip_address()
            .unwrap()
            .parse()
            .unwrap();
        Self {
            emulator,
            sdk,
            autoscaling,
            ec2,
            group,
            action,
            instance_id,
            ip,
            port,
            elbv2,
            validation_arn,
        }
    }

    /// The gate the Lambda builds, with default settings, pointed at the emulator.
    pub fn gate(&self) -> RealGate {
        Gate::new(
            GateConfig::default(),
            HttpProber::new(),
            SdkAws::new(&self.sdk),
        )
    }

    /// A sample event from `events/` with the pending action's fields filled in.
    pub fn event(&self, sample: &str) -> Value {
        sample_event(sample, &self.action)
    }

    /// The group, as `DescribeAutoScalingGroups` says.
    pub async fn describe_group(&self) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        self.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .unwrap()
            .auto_scaling_groups()[0]
            .clone()
    }

    /// The launch template version an instance was launched from (EC2's
    /// `aws:ec2launchtemplate:version` tag, read as the gate reads it), or `none`.
    pub async fn launch_template_version(&self, instance_id: &str) -> String {
        SdkAws::new(&self.sdk)
            .describe_instance(instance_id)
            .await
            .unwrap()
            .and_then(|i| i.launch_template)
            .map_or_else(|| "none".to_owned(), |t| t.version)
    }

    /// The instance's lifecycle state in the group (`Pending:Wait`, `InService`), or
    /// `None` when it has left the group.
    pub async fn lifecycle_state(&self) -> Option<String> {
        self.describe_group()
            .await
            .instances()
            .iter()
            .find(|i| i.instance_id() == Some(self.instance_id.as_str()))
            .and_then(|i| i.lifecycle_state())
            .map(|s| s.as_str().to_owned())
    }

    /// The instance's health in a target group, as the emulator's load balancer reports it.
    pub async fn target_health(&self, target_group_arn: &str) -> (String, Option<String>) {
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(&self.instance_id)
                    .port(i32::from(self.port))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let h = out.target_health_descriptions()[0].target_health().unwrap();
        (
            h.state().unwrap().as_str().to_owned(),
            h.reason().map(|r| r.as_str().to_owned()),
        )
    }

    /// The asynchronous Lambda invocations the emulator accepted: (function, payload).
    pub fn invocations(&self) -> Vec<(String, Value)> {
        http_get_json(&format!("{}/_launch_gate/invocations", self.emulator.url))["Invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["FunctionName"].as_str().unwrap().to_owned(),
                    i["Payload"].clone(),
                )
            })
            .collect()
    }

    /// API calls the emulator received, by operation.
    pub fn calls(&self) -> Value {
        http_get_json(&format!("{}/_launch_gate/calls", self.emulator.url))
    }

    /// Makes the emulator fail the next `count` calls of `operation` (-1: all) with 500
    /// InternalFailure.
    pub fn inject_fault(&self, operation: &str, count: i64) {
        self.inject_fault_with(operation, 500, "InternalFailure", count);
    }

    /// Makes the emulator fail the next `count` calls of `operation` (-1: all) with this
    /// HTTP status and AWS error code (`Throttling`, `RequestLimitExceeded`, ...).
    pub fn inject_fault_with(&self, operation: &str, status: u16, code: &str, count: i64) {
        self.inject(serde_json::json!({"operation": operation, "status": status, "code": code, "count": count}));
    }

    /// Posts `fault` to the emulator's `/_launch_gate/faults`: an error, an error after the
    /// call took effect (`after_effect`), or a slow answer (`delay_seconds`).
    pub fn inject(&self, fault: Value) {
        self.post("/_launch_gate/faults", &fault);
    }

    /// Posts `body` to one of the emulator's control paths (`/_launch_gate/...`).
    pub fn post(&self, path: &str, body: &Value) {
        let body = body.to_string();
        let authority = self.emulator.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(authority).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.contains(" 200 "), "{response}");
    }

    /// Gives the group a warm pool and launches one instance into it, held in
    /// `Warmed:Pending:Wait` by the hook. Its lifecycle action, as the emulator holds it.
    pub async fn launch_into_warm_pool(&self) -> Value {
        self.autoscaling
            .put_warm_pool()
            .auto_scaling_group_name(&self.group)
            .min_size(1)
            .pool_state(aws_sdk_autoscaling::types::WarmPoolState::Stopped)
            .send()
            .await
            .unwrap();
        self.post(
            "/_launch_gate/warm-pool-launch",
            &serde_json::json!({"group": self.group}),
        );
        self.emulator
            .lifecycle_actions()
            .into_iter()
            .find(|a| a["Pending"] == true && a["Destination"] == "WarmPool")
            .expect("the launch into the warm pool is held by the hook")
    }

    /// Terminates the instance through EC2, as an operator or a spot interruption would.
    pub async fn terminate_instance(&self) {
        self.ec2
            .terminate_instances()
            .instance_ids(&self.instance_id)
            .send()
            .await
            .unwrap();
    }

    /// The instance as EC2 describes it.
    pub async fn own_instance(&self) -> aws_sdk_ec2::types::Instance {
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(&self.instance_id)
            .send()
            .await
            .unwrap();
        out.reservations()[0].instances()[0].clone()
    }

    /// Gates `sample` (from `events/`, filled in for the held launch) with the default
    /// gate, and returns its one decision record.
    pub async fn gate_once(&self, sample: &str) -> launch_gate::record::DecisionRecord {
        let summary = self.gate().handle(&self.event(sample), None).await.unwrap();
        assert_eq!(summary.decisions.len(), 1, "{summary:?}");
        summary.decisions.into_iter().next().unwrap()
    }

    /// The instance's EC2 state name (`pending`, `running`, `terminated`).
    pub async fn instance_state(&self) -> String {
        self.own_instance()
            .await
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str()
            .to_owned()
    }

    /// This instance's lifecycle action as the emulator holds it now.
    pub fn action_now(&self) -> Value {
        self.emulator
            .lifecycle_actions()
            .into_iter()
            .find(|a| a["LifecycleActionToken"] == self.action["LifecycleActionToken"])
            .unwrap()
    }

    /// Asserts that nothing touched the lifecycle action: no completion was even tried,
    /// and the instance is still held in `Pending:Wait`.
    pub async fn assert_still_held(&self) {
        let action = self.action_now();
        assert!(
            action["Completions"].as_array().unwrap().is_empty(),
            "{action}"
        );
        assert_eq!(
            self.lifecycle_state().await.as_deref(),
            Some("Pending:Wait")
        );
    }

    /// The accepted `CompleteLifecycleAction` calls for this instance's action.
    pub fn accepted_completions(&self) -> Vec<Value> {
        self.action_now()["Completions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["Accepted"] == true)
            .cloned()
            .collect()
    }
}

/// How the example app's database is prepared before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// `migrate`: everything applied.
    Applied,
    /// Everything but the release's newest migration (`catalog.0002_seed_products`).
    NewestUnapplied,
    /// Nothing applied.
    None,
}

/// How the example app is started.
#[derive(Debug, Clone)]
pub struct AppSetup {
    /// `DJANGO_ALLOWED_HOSTS`; `None` puts the instance's IP in it.
    pub allowed_hosts: Option<String>,
    pub migrations: Migrations,
    /// False leaves `DJANGO_SECRET_KEY` unset: settings raise and gunicorn never serves.
    pub secret_key: bool,
    /// `DJANGO_SECURE_SSL_REDIRECT=1`: http redirects to https, except the health paths.
    pub ssl_redirect: bool,
    /// Serve HTTPS (gunicorn's TLS) with a self-signed certificate made for the test.
    pub tls: bool,
    /// False leaves `SHOP_CURRENCY` unset: the home page fails with 500, `/ping` still 200.
    pub currency: bool,
    /// A database path instead of the app's own (a missing directory: the database is
    /// unreachable).
    pub db_path: Option<PathBuf>,
}

impl AppSetup {
    /// The release's settings with `DJANGO_ALLOWED_HOSTS` set to `hosts` (without the
    /// instance's private IP, the broken variant most scenarios need).
    pub fn allowing(hosts: &str) -> Self {
        Self {
            allowed_hosts: Some(hosts.into()),
            ..Self::default()
        }
    }
}

impl Default for AppSetup {
    fn default() -> Self {
        Self {
            allowed_hosts: None,
            migrations: Migrations::Applied,
            secret_key: true,
            ssl_redirect: false,
            tls: false,
            currency: true,
            db_path: None,
        }
    }
}

/// Writes a self-signed certificate and its key (argv[1], argv[2]) with `cryptography`,
/// which moto already installs.
const SELF_SIGNED: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
open(sys.argv[1], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(sys.argv[2], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// The example Django app under gunicorn, bound to the instance's private IP.
pub struct DjangoApp {
    child: Child,
    dir: tempfile::TempDir,
    ip: IpAddr,
    pub log: PathBuf,
}

impl DjangoApp {
    fn app_dir() -> PathBuf {
        repo().join("examples/django-app")
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(Self::app_dir())
            .env("DJANGO_SECRET_KEY", "launch-gate-tests-only")
            .env("DJANGO_DB_PATH", self.dir.path().join("db.sqlite3"))
            .env("DJANGO_ALLOWED_HOSTS", self.ip.to_string())
            .env("SHOP_CURRENCY", "EUR");
        c
    }

    /// Runs `manage.py migrate [args]` against this app's database.
    pub fn migrate(&self, args: &[&str]) {
        let status = self
            .command(&python())
            .args(["manage.py", "migrate", "-v", "0"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "manage.py migrate {args:?} failed");
    }

    /// Starts the app on `ip:port`. When it is expected to start (a secret key is set),
    /// waits until it accepts connections.
    pub fn start(ip: IpAddr, port: u16, setup: AppSetup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gunicorn.log");
        let placeholder = Command::new("true").spawn().unwrap();
        let mut app = Self {
            child: placeholder,
            dir,
            ip,
            log: log.clone(),
        };
        match setup.migrations {
            Migrations::Applied => app.migrate(&[]),
            Migrations::NewestUnapplied => {
                app.migrate(&[]);
                app.migrate(&["catalog", "0001"]);
            }
            Migrations::None => {}
        }
        let mut cmd = app.command(&python());
        cmd.args(["-m", "gunicorn", "shop.wsgi", "--workers", "1", "--bind"])
            .arg(std::net::SocketAddr::new(ip, port).to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        cmd.env(
            "DJANGO_ALLOWED_HOSTS",
            // Django matches an IPv6 Host by its bracketed form.
            setup.allowed_hosts.unwrap_or_else(|| match ip {
                IpAddr::V4(_) => ip.to_string(),
                IpAddr::V6(_) => format!("[{ip}]"),
            }),
        );
        if !setup.secret_key {
            cmd.env_remove("DJANGO_SECRET_KEY");
        }
        if setup.ssl_redirect {
            cmd.env("DJANGO_SECURE_SSL_REDIRECT", "1");
        }
        if !setup.currency {
            cmd.env_remove("SHOP_CURRENCY");
        }
        if let Some(db) = &setup.db_path {
            cmd.env("DJANGO_DB_PATH", db);
        }
        if setup.tls {
            let (cert, key) = (
                app.dir.path().join("cert.pem"),
                app.dir.path().join("key.pem"),
            );
            let status = Command::new(python())
                .arg("-c")
                .arg(SELF_SIGNED)
                .arg(&cert)
                .arg(&key)
                .status()
                .unwrap();
            assert!(status.success(), "could not make a self-signed certificate");
            cmd.arg("--certfile").arg(cert).arg("--keyfile").arg(key);
        }
        app.child = cmd.spawn().expect("start gunicorn");
        if setup.secret_key {
            let until = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect((ip, port)).is_err() {
                assert!(
                    Instant::now() < until,
                    "gunicorn did not listen on {ip}:{port}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        app
    }

    /// Starts the app with no migration applied, and applies them after `delay`, as a
    /// slow start-up script would; the handle gives the app back once migrated.
    pub fn start_migrating_after(
        ip: IpAddr,
        port: u16,
        delay: Duration,
    ) -> tokio::task::JoinHandle<DjangoApp> {
        let app = Self::start(
            ip,
            port,
            AppSetup {
                migrations: Migrations::None,
                ..AppSetup::default()
            },
        );
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(delay);
            app.migrate(&[]);
            app
        })
    }

    /// Whether gunicorn's master process has exited, and its log.
    pub fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|_| std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for DjangoApp {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// nginx in front of an upstream, redirecting every path to https, or every path but
/// `/health` (the fixed configuration).
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(ip: IpAddr, port: u16, upstream: (IpAddr, u16), exempt_health: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let health = if exempt_health {
            format!(
                "location = /health {{ proxy_pass http://{}:{}; proxy_set_header Host $http_host; }}",
                upstream.0, upstream.1
            )
        } else {
            String::new()
        };
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {ip}:{port};\n    {health}\n\
                 location / {{ return 301 https://$host$request_uri; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: apt-get install nginx-light (.ci/run does)");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < until,
                "nginx did not listen on {ip}:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A subscriber to the gate's events, as a pipeline would have one: an EventBridge rule
/// on the default bus matching `"source": ["launch-gate"]`, with an SQS queue as its
/// target.
pub struct Subscriber {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// Every event received so far.
    pub received: Vec<Value>,
}

impl Subscriber {
    /// The rule and its queue, in the world's emulator.
    pub async fn start(sdk: &SdkConfig) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name("launch-gate-events")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        // The README's rule.
        events
            .put_rule()
            .name("launch-gate-to-pipeline")
            .event_pattern(r#"{"source": ["launch-gate"]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("launch-gate-to-pipeline")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("pipeline")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self {
            sqs,
            queue_url,
            received: Vec::new(),
        }
    }

    /// Receives what has arrived, and returns every event received so far.
    pub async fn events(&mut self) -> &[Value] {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                self.received
                    .push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        &self.received
    }

    /// The details of the events of `detail_type` received so far.
    pub async fn details(&mut self, detail_type: &str) -> Vec<Value> {
        self.events()
            .await
            .iter()
            .filter(|e| e["detail-type"] == detail_type)
            .map(|e| e["detail"].clone())
            .collect()
    }
}

/// The group's instances and EventBridge, played for a rollout: each launch the hook
/// holds boots its release (the app of its launch template version, started on its
/// private IP) and its lifecycle event is delivered to a gate, as the rule would.
pub struct Fleet {
    task: tokio::task::JoinHandle<()>,
    apps: Arc<Mutex<Vec<DjangoApp>>>,
    /// Launches the fleet could not play: an app that did not start, a gate that failed.
    failures: Arc<Mutex<Vec<String>>>,
    /// The launch template version of every launch the fleet saw, read while the instance
    /// lived (EC2 may drop a terminated instance's tags at once).
    booted: Arc<Mutex<Vec<(String, String)>>>,
}

/// What a release does when an instance boots: its app's settings, or `None` when the
/// app never starts. Given the launch template version and how many instances of that
/// version booted before.
pub type Release = fn(&str, usize) -> Option<AppSetup>;

impl World {
    /// Starts playing the fleet: gates use `config` (the function's settings).
    pub fn fleet(&self, config: GateConfig, release: Release) -> Fleet {
        let apps = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let url = self.emulator.url.clone();
        let sdk = self.sdk.clone();
        let port = self.port;
        let (shared_apps, shared_failures) = (apps.clone(), failures.clone());
        let booted = Arc::new(Mutex::new(Vec::new()));
        let shared_booted = booted.clone();
        let task = tokio::spawn(async move {
            let aws = SdkAws::new(&sdk);
            let mut seen: Vec<String> = Vec::new();
            loop {
                let view = url.clone();
                let actions = tokio::task::spawn_blocking(move || lifecycle_actions(&view))
                    .await
                    .unwrap();
                for action in actions {
                    let id = action["EC2InstanceId"].as_str().unwrap().to_owned();
                    if action["Pending"] != true || seen.contains(&id) {
                        continue;
                    }
                    seen.push(id.clone());
                    let info = aws.describe_instance(&id).await.unwrap().unwrap();
                    let ip = info.private_ip.unwrap();
                    let version = info
                        .launch_template
                        .map_or_else(|| "none".to_owned(), |t| t.version);
                    let nth = {
                        let mut booted = shared_booted.lock().unwrap();
                        let nth = booted.iter().filter(|(_, v)| *v == version).count();
                        booted.push((id.clone(), version.clone()));
                        nth
                    };
                    let (apps, failures) = (shared_apps.clone(), shared_failures.clone());
                    let gate = Gate::new(config.clone(), HttpProber::new(), SdkAws::new(&sdk));
                    tokio::spawn(async move {
                        if let Some(setup) = release(&version, nth) {
                            let started = tokio::task::spawn_blocking(move || {
                                DjangoApp::start(ip, port, setup)
                            });
                            match started.await {
                                Ok(app) => apps.lock().unwrap().push(app),
                                Err(e) => {
                                    failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("{id}: the app did not start: {e}"));
                                    return;
                                }
                            }
                        }
                        let event = sample_event("launch.json", &action);
                        if let Err(e) = gate.handle(&event, None).await {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{id}: the gate failed: {e}"));
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Fleet {
            task,
            apps,
            failures,
            booted,
        }
    }
}

impl Fleet {
    /// The launch template version of `instance_id`, if the fleet has seen it launch.
    pub fn version_of(&self, instance_id: &str) -> Option<String> {
        self.booted
            .lock()
            .unwrap()
            .iter()
            .find(|(id, _)| id == instance_id)
            .map(|(_, v)| v.clone())
    }

    /// Panics when the fleet stopped playing or could not play a launch, so that a test
    /// says why rather than timing out.
    pub fn check(&self) {
        let failures = self.failures.lock().unwrap();
        assert!(failures.is_empty(), "the fleet failed: {failures:#?}");
        assert!(
            !self.task.is_finished(),
            "the fleet's task died: see its panic above"
        );
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.task.abort();
        self.apps.lock().unwrap().clear();
    }
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
