//! A world: an Auto Scaling group in the emulator, in a `127.0.0.0/16` VPC, with a launch
//! lifecycle hook and its instances held; what tests read and change of it.

use super::*;

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

    /// The world, in named steps: the emulator, the network, the target groups, the hook's
    /// settings, the group with its hook, and the held launch.
    pub async fn build_with_port(port: u16, spec: WorldSpec) -> Self {
        let emulator = Emulator::start_with(&spec.emulator_options);
        let sdk = emulator.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let autoscaling = aws_sdk_autoscaling::Client::new(&sdk);
        let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let network = Network::create(&ec2).await;
        let (target_groups, validation_arn) =
            create_target_groups(&elbv2, &network, port, &spec).await;
        let metadata = hook_metadata(port, &spec, validation_arn.as_deref());
        let group = "shop-web".to_owned();
        create_group_with_hook(
            &ec2,
            &autoscaling,
            &group,
            &network.subnets[0],
            &target_groups,
            metadata,
            spec.heartbeat_timeout,
        )
        .await;
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

    /// Points the group at version `version` of the launch template `shop-web`, and at
    /// `desired` instances when given.
    pub async fn use_launch_template_version(&self, version: &str, desired: Option<i32>) {
        self.autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(&self.group)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name("shop-web")
                    .version(version)
                    .build(),
            )
            .set_desired_capacity(desired)
            .send()
            .await
            .unwrap();
    }

    /// A group created after the gate was deployed (a blue-green release's new group):
    /// `name`, from the world's launch template, in its subnet, with `tags` and the world's
    /// launch hook and settings; one instance launched and held. Its lifecycle action.
    pub async fn add_group(&self, name: &str, tags: &[(&str, &str)]) -> Value {
        let subnet = self.own_instance().await.subnet_id().unwrap().to_owned();
        let mut create = self
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(0)
            .max_size(10)
            .desired_capacity(0)
            .vpc_zone_identifier(subnet)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name("shop-web")
                    .build(),
            );
        for (key, value) in tags {
            create = create.tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .propagate_at_launch(true)
                    .build(),
            );
        }
        create.send().await.unwrap();
        let mut hook = self
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(name)
            .lifecycle_hook_name("launch-gate")
            .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
            .heartbeat_timeout(300)
            .default_result("ABANDON");
        if let Some(m) = self.action["NotificationMetadata"].as_str() {
            hook = hook.notification_metadata(m);
        }
        hook.send().await.unwrap();
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(1)
            .send()
            .await
            .unwrap();
        self.emulator
            .lifecycle_actions()
            .into_iter()
            .find(|a| a["Pending"] == true && a["AutoScalingGroupName"] == name)
            .expect("the new group's launch is held by its hook")
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

/// The world's VPC, `127.0.0.0/16`, and two subnets; the group's instances live in the
/// first, `127.0.1.0/24`, so their private IPs are loopback addresses.
pub struct Network {
    pub vpc_id: String,
    pub subnets: Vec<String>,
}

impl Network {
    pub async fn create(ec2: &aws_sdk_ec2::Client) -> Self {
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
        Self { vpc_id, subnets }
    }
}

/// The spec's target groups, and a load balancer whose listeners forward to the attached
/// ones. The group's target groups (name, ARN), and the validation target group's ARN.
async fn create_target_groups(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    network: &Network,
    port: u16,
    spec: &WorldSpec,
) -> (Vec<(String, String)>, Option<String>) {
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Matcher, ProtocolEnum};
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
            .vpc_id(&network.vpc_id)
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
                    .set_subnets(Some(network.subnets.clone()))
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
    (target_groups, validation_arn)
}

/// The hook's `NotificationMetadata`: the spec's raw text, or [`fast_settings`] with its
/// overrides and the validation target group.
fn hook_metadata(port: u16, spec: &WorldSpec, validation_arn: Option<&str>) -> Option<String> {
    spec.raw_metadata.clone().or_else(|| {
        let mut metadata = fast_settings(port);
        if let (Some(m), Some(o)) = (metadata.as_object_mut(), spec.overrides.as_object()) {
            m.extend(o.clone());
        }
        if let Some(v) = validation_arn {
            metadata["validation_target_group_arn"] = Value::String(v.to_owned());
        }
        Some(metadata.to_string())
    })
}

/// The launch template `shop-web`, and the group of that name (empty) with its target
/// groups and the launch lifecycle hook `launch-gate` (`DefaultResult` ABANDON).
async fn create_group_with_hook(
    ec2: &aws_sdk_ec2::Client,
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
    subnet_id: &str,
    target_groups: &[(String, String)],
    metadata: Option<String>,
    heartbeat_timeout: i32,
) {
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
    autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(group)
        .min_size(0)
        .max_size(250)
        .desired_capacity(0)
        .vpc_zone_identifier(subnet_id)
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
        .auto_scaling_group_name(group)
        .lifecycle_hook_name("launch-gate")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .heartbeat_timeout(heartbeat_timeout)
        .default_result("ABANDON");
    if let Some(m) = metadata {
        put = put.notification_metadata(m);
    }
    put.send().await.unwrap();
}
