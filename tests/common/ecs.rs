//! An ECS service on blue/green deployments in the emulator, with the gate as its
//! `POST_SCALE_UP` lifecycle hook: the harness plays every task (the example app of its
//! task definition's release, on the task's loopback private IP, or on its container
//! instance's IP and host port in bridge mode) and delivers each due hook invocation to
//! the gate, returning its answer to the emulator as Lambda would.
//!
//! Where AWS's documentation is silent the emulator answers either way behind a switch
//! ([`EcsContract`]); a scenario runs under both positions in one world.

use super::*;
use aws_sdk_ecs::types::{
    AdvancedConfiguration, AssignPublicIp, AwsVpcConfiguration, ContainerDefinition,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookStage,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy, LoadBalancer,
    NetworkConfiguration, NetworkMode, PortMapping,
};
use aws_smithy_types::Document;

/// The gate's function, as the hook names it.
pub const HOOK_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:launch-gate";

/// One answer of the gate to the hook.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The service deployment the invocation named.
    pub deployment: String,
    /// The lifecycle stage.
    pub stage: String,
    /// What the function returned (`Null` on a function error).
    pub response: Value,
    /// The record's reason.
    pub reason: String,
    /// The decision record.
    pub record: Value,
}

impl Answer {
    /// The `hookStatus` answered (`none` on a function error).
    pub fn status(&self) -> String {
        self.response["hookStatus"]
            .as_str()
            .unwrap_or("none")
            .to_owned()
    }
}

/// The gate's answers to the hook.
pub type Answers = Arc<Mutex<Vec<Answer>>>;

/// The emulator's answers where AWS's documentation is silent (see
/// `emulator/ecs_deployments.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsContract {
    /// `DescribeServiceDeployments` lists running Lambda hook executions in
    /// `lifecycleHookDetails`.
    pub lambda_hooks_in_details: bool,
    /// `resolvedConfiguration` for every revision (`always`) or only the active one
    /// (`active_only`).
    pub resolved_configuration: &'static str,
    /// A task's `startedBy` is `ecs-svc/<the revision's number>` (`revision`) or an id
    /// unrelated to any ARN (`independent`).
    pub started_by: &'static str,
}

impl EcsContract {
    /// Every silence answered as the first version of the ECS hold assumed.
    pub const LISTED: Self = Self {
        lambda_hooks_in_details: true,
        resolved_configuration: "always",
        started_by: "revision",
    };
    /// Every silence answered the other way.
    pub const SILENT: Self = Self {
        lambda_hooks_in_details: false,
        resolved_configuration: "active_only",
        started_by: "independent",
    };
}

/// How the service's tasks are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsNetwork {
    /// Fargate: each task its own ENI, an IP target on the container port.
    Awsvpc,
    /// EC2 container instances: each task an instance target on a dynamic host port.
    Bridge,
}

/// How the world is built.
#[derive(Debug, Clone)]
pub struct EcsOptions {
    pub tasks: i32,
    /// Merged over fast settings into the hook's `hookDetails`.
    pub hook_details: Value,
    pub network: EcsNetwork,
    /// The stages the gate's hook is configured for.
    pub stages: Vec<DeploymentLifecycleHookStage>,
    /// The hook's `timeoutConfiguration.timeoutInMinutes`.
    pub timeout_minutes: Option<i32>,
    /// The function's settings (served services, mode).
    pub gate: GateConfig,
    /// No load balancer: a headless service (Service Connect, VPC Lattice, workers).
    pub headless: bool,
}

impl Default for EcsOptions {
    fn default() -> Self {
        Self {
            tasks: 1,
            hook_details: serde_json::json!({}),
            network: EcsNetwork::Awsvpc,
            stages: vec![DeploymentLifecycleHookStage::PostScaleUp],
            timeout_minutes: None,
            gate: serving_config(),
            headless: false,
        }
    }
}

/// The function's settings in the harness: it serves the cluster `shop`.
pub fn serving_config() -> GateConfig {
    GateConfig {
        ecs_services: vec!["shop/*".to_owned()],
        ..GateConfig::default()
    }
}

/// What a release's task runs: its app's settings by task definition revision (1, 2, ...)
/// and how many tasks of that revision started before; `None` never starts the app.
pub type TaskRelease = Arc<dyn Fn(u32, usize) -> Option<AppSetup> + Send + Sync>;

/// The service `web` of cluster `shop`, its target groups and the played tasks.
pub struct EcsWorld {
    pub emulator: Emulator,
    pub sdk: SdkConfig,
    pub ecs: aws_sdk_ecs::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// The port every task's app listens on (the container port).
    pub port: u16,
    pub blue_target_group: String,
    pub green_target_group: String,
    pub options: EcsOptions,
    player: tokio::task::JoinHandle<()>,
    apps: Arc<Mutex<Vec<(String, DjangoApp)>>>,
    /// Every answer the gate gave, with its record's reason.
    pub answers: Answers,
}

impl EcsWorld {
    /// A running service of `tasks` awsvpc tasks of revision 1, deploying blue/green with
    /// the gate at `POST_SCALE_UP` and `hook_details` (merged over fast settings); the
    /// harness plays its tasks with `release` and delivers the hook's invocations to a gate.
    pub async fn start(
        tasks: i32,
        hook_details: Value,
        release: impl Fn(u32, usize) -> Option<AppSetup> + Send + Sync + 'static,
    ) -> Self {
        Self::start_delivering(tasks, hook_details, release, true).await
    }

    /// [`EcsWorld::start`]; with `deliver` false the harness plays the tasks only, and the
    /// test delivers the hook's invocations itself (through the Lambda Runtime API).
    pub async fn start_delivering(
        tasks: i32,
        hook_details: Value,
        release: impl Fn(u32, usize) -> Option<AppSetup> + Send + Sync + 'static,
        deliver: bool,
    ) -> Self {
        let options = EcsOptions {
            tasks,
            hook_details,
            ..EcsOptions::default()
        };
        Self::start_with(options, release, deliver).await
    }

    /// The world as `options` say.
    pub async fn start_with(
        options: EcsOptions,
        release: impl Fn(u32, usize) -> Option<AppSetup> + Send + Sync + 'static,
        deliver: bool,
    ) -> Self {
        let emulator = Emulator::start();
        let sdk = emulator.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let port = free_port();
        let Network {
            vpc_id, subnets, ..
        } = Network::create(&ec2).await;
        let bridge = options.network == EcsNetwork::Bridge;
        let (blue, green, production_rule, test_rule) =
            load_balancer(&elbv2, &vpc_id, &subnets, port, bridge).await;
        ecs.create_cluster()
            .cluster_name("shop")
            .send()
            .await
            .unwrap();
        if bridge {
            container_instances(&ec2, &ecs, &subnets[0], 2).await;
        }
        // Revisions 1 (running), 2 and 3 (deployed under each contract).
        for _ in 0..3 {
            let mapping = PortMapping::builder().container_port(i32::from(port));
            // Bridge: a dynamic host port on the container instance.
            let mapping = if bridge {
                mapping.host_port(0)
            } else {
                mapping
            };
            ecs.register_task_definition()
                .family("shop-web")
                .network_mode(if bridge {
                    NetworkMode::Bridge
                } else {
                    NetworkMode::Awsvpc
                })
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("web")
                        .image("shop-web:latest")
                        .memory(512)
                        .port_mappings(mapping.build())
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let mut details = serde_json::json!({
            "health_port": port,
            "interval_seconds": 1,
            "probe_timeout_seconds": 1,
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
            // The green tasks' apps start as ECS starts the tasks, beside the first
            // invocation: their first answers may be slow on a busy machine.
            "grace_period_seconds": 15,
            "max_wait_seconds": 60,
        });
        if let (Some(d), Some(o)) = (details.as_object_mut(), options.hook_details.as_object()) {
            d.extend(o.clone());
        }
        let mut hook = DeploymentLifecycleHook::builder()
            .hook_target_arn(HOOK_FUNCTION)
            .role_arn("arn:aws:iam::123456789012:role/ecs-invoke-launch-gate")
            .set_lifecycle_stages(Some(options.stages.clone()))
            .hook_details(document(&details));
        if let Some(minutes) = options.timeout_minutes {
            hook = hook.timeout_configuration(
                DeploymentLifecycleHookTimeoutConfiguration::builder()
                    .timeout_in_minutes(minutes)
                    .build(),
            );
        }
        let balancer = (!options.headless).then(|| {
            LoadBalancer::builder()
                .target_group_arn(&blue)
                .container_name("web")
                .container_port(i32::from(port))
                .advanced_configuration(
                    AdvancedConfiguration::builder()
                        .alternate_target_group_arn(&green)
                        .production_listener_rule(&production_rule)
                        .test_listener_rule(&test_rule)
                        .role_arn("arn:aws:iam::123456789012:role/ecs-elb")
                        .build(),
                )
                .build()
        });
        let mut service = ecs
            .create_service()
            .cluster("shop")
            .service_name("web")
            .task_definition("shop-web:1")
            .desired_count(options.tasks)
            .set_load_balancers(balancer.map(|b| vec![b]))
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .strategy(DeploymentStrategy::BlueGreen)
                    .bake_time_in_minutes(0)
                    .lifecycle_hooks(hook.build())
                    .build(),
            );
        if bridge {
            service = service.launch_type(aws_sdk_ecs::types::LaunchType::Ec2);
        } else {
            let security_group = ec2
                .create_security_group()
                .group_name("shop-web-tasks")
                .description("the tasks")
                .vpc_id(&vpc_id)
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_owned();
            service = service
                .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            AwsVpcConfiguration::builder()
                                .subnets(&subnets[0])
                                .security_groups(&security_group)
                                .assign_public_ip(AssignPublicIp::Disabled)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                );
        }
        service.send().await.unwrap();
        let apps = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let player = tokio::spawn(play(
            emulator.url.clone(),
            sdk.clone(),
            port,
            options.gate.clone(),
            Arc::new(release),
            apps.clone(),
            deliver.then(|| answers.clone()),
        ));
        Self {
            emulator,
            sdk,
            ecs,
            elbv2,
            port,
            blue_target_group: blue,
            green_target_group: green,
            options,
            player,
            apps,
            answers,
        }
    }

    /// Sets the emulator's answers where AWS is silent.
    pub fn set_contract(&self, contract: EcsContract) {
        self.settings(serde_json::json!({
            "lambda_hooks_in_details": contract.lambda_hooks_in_details,
            "resolved_configuration": contract.resolved_configuration,
            "started_by": contract.started_by,
        }));
    }

    /// Changes the emulator's ECS settings (`/_launch_gate/ecs/settings`).
    pub fn settings(&self, settings: Value) {
        let (status, body) = http_post_json(
            &format!("{}/_launch_gate/ecs/settings", self.emulator.url),
            &settings,
        );
        assert!(status.contains(" 200 "), "{status} {body}");
    }

    /// Each contract in turn with the revision to deploy under it (2, then 3): a scenario
    /// runs under both positions of every switch in one world.
    pub fn each_contract() -> [(EcsContract, u32); 2] {
        [(EcsContract::LISTED, 2), (EcsContract::SILENT, 3)]
    }

    /// Starts a deployment of task definition revision `revision`; its ARN.
    pub async fn deploy(&self, revision: u32) -> String {
        self.ecs
            .update_service()
            .cluster("shop")
            .service("web")
            .task_definition(format!("shop-web:{revision}"))
            .send()
            .await
            .unwrap();
        self.current_deployment().await
    }

    /// Starts a deployment of the same task definition (`forceNewDeployment`); its ARN.
    pub async fn redeploy(&self) -> String {
        self.ecs
            .update_service()
            .cluster("shop")
            .service("web")
            .force_new_deployment(true)
            .send()
            .await
            .unwrap();
        self.current_deployment().await
    }

    async fn current_deployment(&self) -> String {
        self.service()
            .await
            .current_service_deployment()
            .expect("a service deployment started")
            .to_owned()
    }

    pub async fn service(&self) -> aws_sdk_ecs::types::Service {
        self.ecs
            .describe_services()
            .cluster("shop")
            .services("web")
            .send()
            .await
            .unwrap()
            .services()[0]
            .clone()
    }

    /// The service deployment `arn`, as `DescribeServiceDeployments` shows it now.
    pub async fn deployment(&self, arn: &str) -> aws_sdk_ecs::types::ServiceDeployment {
        self.ecs
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .unwrap()
            .service_deployments()[0]
            .clone()
    }

    /// The deployment once it ended (`SUCCESSFUL`, `ROLLBACK_SUCCESSFUL`, ...), within
    /// `limit`; the test fails past it.
    pub async fn ended(&self, arn: &str, limit: Duration) -> aws_sdk_ecs::types::ServiceDeployment {
        let until = Instant::now() + limit;
        loop {
            assert!(!self.player.is_finished(), "the harness's player died");
            let d = self.deployment(arn).await;
            let status = d
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if !matches!(
                status.as_str(),
                "PENDING"
                    | "IN_PROGRESS"
                    | "ROLLBACK_IN_PROGRESS"
                    | "ROLLBACK_REQUESTED"
                    | "STOP_REQUESTED"
            ) {
                return d;
            }
            assert!(
                Instant::now() < until,
                "the deployment is still {status} after {limit:?}; answers: {:#?}",
                self.answers(arn)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The answers the gate gave for `deployment`, in order.
    pub fn answers(&self, deployment: &str) -> Vec<Answer> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.deployment == deployment)
            .cloned()
            .collect()
    }

    /// The last answer for `deployment`.
    pub fn last(&self, deployment: &str) -> Answer {
        self.answers(deployment)
            .pop()
            .unwrap_or_else(|| panic!("no answer for {deployment}"))
    }

    /// The answers the gate gave for `deployment`: `hookStatus` values, in order.
    pub fn statuses(&self, deployment: &str) -> Vec<String> {
        self.answers(deployment)
            .iter()
            .map(Answer::status)
            .collect()
    }

    /// A gate as the function builds it, pointed at the emulator, with the world's
    /// settings and the function ARN the service's hook names.
    pub fn gate(&self) -> RealGate {
        gate(&self.sdk, self.options.gate.clone())
    }
}

impl Drop for EcsWorld {
    fn drop(&mut self) {
        self.player.abort();
        self.apps.lock().unwrap().clear();
    }
}

/// `value` as a smithy document (the SDK's type for `hookDetails`).
fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => match n.as_u64() {
            Some(u) => Document::Number(aws_smithy_types::Number::PosInt(u)),
            None => Document::Number(aws_smithy_types::Number::Float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), document(v))).collect())
        }
    }
}

/// An application load balancer with two target groups (blue and green: IP targets, or
/// instance targets for `instances`), a production listener rule forwarding to blue and a
/// test listener rule to green. (blue, green, production rule, test rule).
async fn load_balancer(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    vpc_id: &str,
    subnets: &[String],
    port: u16,
    instances: bool,
) -> (String, String, String, String) {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, Matcher, ProtocolEnum, RuleCondition, TargetTypeEnum,
    };
    let mut tgs = Vec::new();
    for name in ["web-blue", "web-green"] {
        let tg = elbv2
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(port))
            .vpc_id(vpc_id)
            .target_type(if instances {
                TargetTypeEnum::Instance
            } else {
                TargetTypeEnum::Ip
            })
            .health_check_path("/ping")
            .health_check_interval_seconds(5)
            .health_check_timeout_seconds(2)
            .healthy_threshold_count(2)
            .unhealthy_threshold_count(2)
            .matcher(Matcher::builder().http_code("200").build())
            .send()
            .await
            .unwrap();
        tgs.push(tg.target_groups()[0].target_group_arn().unwrap().to_owned());
    }
    let lb = elbv2
        .create_load_balancer()
        .name("shop-web")
        .set_subnets(Some(subnets.to_vec()))
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_owned();
    let mut rules = Vec::new();
    for (listener_port, tg) in [(80, &tgs[0]), (8080, &tgs[1])] {
        let listener = elbv2
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(listener_port)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(tg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let listener_arn = listener.listeners()[0].listener_arn().unwrap().to_owned();
        let rule = elbv2
            .create_rule()
            .listener_arn(&listener_arn)
            .priority(1)
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values("/*")
                    .build(),
            )
            .actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(tg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        rules.push(rule.rules()[0].rule_arn().unwrap().to_owned());
    }
    (
        tgs[0].clone(),
        tgs[1].clone(),
        rules[0].clone(),
        rules[1].clone(),
    )
}

/// The gate as the function builds it, pointed at the emulator, knowing its function ARN
/// as the service's hook names it.
pub fn gate(sdk: &SdkConfig, config: GateConfig) -> RealGate {
    Gate::new(config, HttpProber::new(), SdkAws::new(sdk)).with_function_arn(HOOK_FUNCTION)
}

/// `count` EC2 instances in `subnet` (loopback addresses), registered with the cluster
/// `shop` as container instances.
async fn container_instances(
    ec2: &aws_sdk_ec2::Client,
    ecs: &aws_sdk_ecs::Client,
    subnet: &str,
    count: i32,
) {
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(count)
        .max_count(count)
        .subnet_id(subnet)
        .send()
        .await
        .unwrap();
    for instance in run.instances() {
        let id = instance.instance_id().unwrap();
        let document = serde_json::json!({
            "instanceId": id,
            "privateIp": instance.private_ip_address(),
            "region": "us-east-1",
            "availabilityZone": "us-east-1a",
        });
        ecs.register_container_instance()
            .cluster("shop")
            .instance_identity_document(document.to_string())
            .send()
            .await
            .unwrap();
    }
}

/// Where a running task's app listens: its ENI's private IP and the container port
/// (awsvpc), or its container instance's private IP and host port (bridge).
async fn task_address(
    ecs: &aws_sdk_ecs::Client,
    ec2: &aws_sdk_ec2::Client,
    task: &aws_sdk_ecs::types::Task,
    port: u16,
) -> Option<(IpAddr, u16)> {
    let eni = task
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .and_then(|v| v.parse().ok());
    if let Some(ip) = eni {
        return Some((ip, port));
    }
    let host_port = task
        .containers()
        .iter()
        .flat_map(|c| c.network_bindings())
        .find(|b| b.container_port() == Some(i32::from(port)))
        .and_then(|b| b.host_port())
        .and_then(|p| u16::try_from(p).ok())?;
    let instance = ecs
        .describe_container_instances()
        .cluster("shop")
        .container_instances(task.container_instance_arn()?)
        .send()
        .await
        .ok()?
        .container_instances()
        .first()?
        .ec2_instance_id()?
        .to_owned();
    let described = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .ok()?;
    let ip = described
        .reservations()
        .first()?
        .instances()
        .first()?
        .private_ip_address()?
        .parse()
        .ok()?;
    Some((ip, host_port))
}

/// Plays the service: starts each new running task's app, stops the apps of stopped
/// tasks, and delivers each due hook invocation to a gate, returning its answer.
async fn play(
    url: String,
    sdk: SdkConfig,
    port: u16,
    config: GateConfig,
    release: TaskRelease,
    apps: Arc<Mutex<Vec<(String, DjangoApp)>>>,
    answers: Option<Answers>,
) {
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let gate = Arc::new(gate(&sdk, config));
    let mut seen: Vec<String> = Vec::new();
    let mut started: Vec<(u32, usize)> = Vec::new();
    loop {
        let arns = ecs
            .list_tasks()
            .cluster("shop")
            .service_name("web")
            .send()
            .await
            .unwrap()
            .task_arns()
            .to_vec();
        if !arns.is_empty() {
            let described = ecs
                .describe_tasks()
                .cluster("shop")
                .set_tasks(Some(arns))
                .send()
                .await
                .unwrap();
            for t in described.tasks() {
                let arn = t.task_arn().unwrap().to_owned();
                let running = t.last_status() == Some("RUNNING");
                if !running {
                    apps.lock().unwrap().retain(|(a, _)| a != &arn);
                    continue;
                }
                if seen.contains(&arn) {
                    continue;
                }
                seen.push(arn.clone());
                let revision: u32 = t
                    .task_definition_arn()
                    .and_then(|d| d.rsplit(':').next())
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(1);
                let nth = started.iter().filter(|(r, _)| *r == revision).count();
                started.push((revision, nth));
                let (ip, listen) = task_address(&ecs, &ec2, t, port).await.expect(
                    "a running task has an address: its ENI, or its instance and host port",
                );
                if let Some(setup) = release(revision, nth) {
                    let apps = apps.clone();
                    tokio::task::spawn_blocking(move || {
                        let app = DjangoApp::start(ip, listen, setup);
                        apps.lock().unwrap().push((arn, app));
                    });
                }
            }
        }
        let Some(answers) = &answers else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let due = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http_get_json(&format!("{url}/_launch_gate/ecs/hook-invocations"))
        })
        .await
        .unwrap();
        for invocation in due.as_array().cloned().unwrap_or_default() {
            let (gate, url, answers) = (gate.clone(), url.clone(), answers.clone());
            tokio::spawn(async move {
                let payload = &invocation["payload"];
                let (response, error, reason, record) =
                    match gate.ecs_hook(payload, Default::default()).await {
                        Ok((response, record)) => (
                            serde_json::to_value(response).unwrap(),
                            false,
                            record.reason.clone(),
                            serde_json::to_value(&record).unwrap(),
                        ),
                        Err(e) => (Value::Null, true, e.to_string(), Value::Null),
                    };
                answers.lock().unwrap().push(Answer {
                    deployment: payload["resourceArn"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    stage: payload["lifecycleStage"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    response: response.clone(),
                    reason,
                    record,
                });
                let body = serde_json::json!({
                    "executionId": invocation["executionId"],
                    "response": response,
                    "error": error,
                });
                tokio::task::spawn_blocking(move || {
                    http_post_json(&format!("{url}/_launch_gate/ecs/hook-response"), &body)
                })
                .await
                .unwrap();
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
