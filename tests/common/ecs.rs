//! An ECS service on blue/green deployments in the emulator, with the gate as its
//! `POST_SCALE_UP` lifecycle hook: the harness plays every task (the example app of its
//! task definition's release, on the task's loopback private IP) and delivers each due
//! hook invocation to the gate, returning its answer to the emulator as Lambda would.

use super::*;
use aws_sdk_ecs::types::{
    AdvancedConfiguration, AssignPublicIp, AwsVpcConfiguration, ContainerDefinition,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookStage,
    DeploymentStrategy, LoadBalancer, NetworkConfiguration, NetworkMode, PortMapping,
};
use aws_smithy_types::Document;

/// The gate's function, as the hook names it.
pub const HOOK_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:launch-gate";

/// The gate's answers to the hook, each with its record's reason.
pub type Answers = Arc<Mutex<Vec<(Value, String)>>>;

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
    player: tokio::task::JoinHandle<()>,
    apps: Arc<Mutex<Vec<(String, DjangoApp)>>>,
    /// Every answer the gate gave, with its record's reason.
    pub answers: Answers,
}

impl EcsWorld {
    /// A running service of `tasks` tasks of revision 1, deploying blue/green with the gate
    /// at `POST_SCALE_UP` and `hook_details` (merged over fast settings); the harness
    /// plays its tasks with `release` and delivers the hook's invocations to a gate.
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
        let emulator = Emulator::start();
        let sdk = emulator.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let port = free_port();
        let Network {
            vpc_id, subnets, ..
        } = Network::create(&ec2).await;
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
        let (blue, green, production_rule, test_rule) =
            load_balancer(&elbv2, &vpc_id, &subnets, port).await;
        ecs.create_cluster()
            .cluster_name("shop")
            .send()
            .await
            .unwrap();
        for _ in 0..2 {
            ecs.register_task_definition()
                .family("shop-web")
                .network_mode(NetworkMode::Awsvpc)
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("web")
                        .image("shop-web:latest")
                        .memory(512)
                        .port_mappings(
                            PortMapping::builder()
                                .container_port(i32::from(port))
                                .build(),
                        )
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
        if let (Some(d), Some(o)) = (details.as_object_mut(), hook_details.as_object()) {
            d.extend(o.clone());
        }
        ecs.create_service()
            .cluster("shop")
            .service_name("web")
            .task_definition("shop-web:1")
            .desired_count(tasks)
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
            )
            .load_balancers(
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
                    .build(),
            )
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .strategy(DeploymentStrategy::BlueGreen)
                    .bake_time_in_minutes(0)
                    .lifecycle_hooks(
                        DeploymentLifecycleHook::builder()
                            .hook_target_arn(HOOK_FUNCTION)
                            .role_arn("arn:aws:iam::123456789012:role/ecs-invoke-launch-gate")
                            .lifecycle_stages(DeploymentLifecycleHookStage::PostScaleUp)
                            .hook_details(document(&details))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let apps = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let player = tokio::spawn(play(
            emulator.url.clone(),
            sdk.clone(),
            port,
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
            player,
            apps,
            answers,
        }
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
        let service = self.service().await;
        service
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

    /// The deployment once it ended (`SUCCESSFUL`, `ROLLBACK_SUCCESSFUL`, ...), within
    /// `limit`.
    pub async fn ended(&self, arn: &str, limit: Duration) -> aws_sdk_ecs::types::ServiceDeployment {
        let until = Instant::now() + limit;
        loop {
            assert!(!self.player.is_finished(), "the harness's player died");
            let d = self
                .ecs
                .describe_service_deployments()
                .service_deployment_arns(arn)
                .send()
                .await
                .unwrap()
                .service_deployments()[0]
                .clone();
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
                self.answers.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The answers the gate gave: `hookStatus` values, in order.
    pub fn statuses(&self) -> Vec<String> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _)| a["hookStatus"].as_str().unwrap_or("none").to_owned())
            .collect()
    }

    /// A gate as the function builds it, pointed at the emulator.
    pub fn gate(&self) -> RealGate {
        Gate::new(
            GateConfig::default(),
            HttpProber::new(),
            SdkAws::new(&self.sdk),
        )
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

/// An application load balancer with two IP target groups (blue and green), a production
/// listener rule forwarding to blue and a test listener rule to green. (blue, green,
/// production rule, test rule).
async fn load_balancer(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    vpc_id: &str,
    subnets: &[String],
    port: u16,
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
            .target_type(TargetTypeEnum::Ip)
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

/// Plays the service: starts each new running task's app, stops the apps of stopped
/// tasks, and delivers each due hook invocation to a gate, returning its answer.
async fn play(
    url: String,
    sdk: SdkConfig,
    port: u16,
    release: TaskRelease,
    apps: Arc<Mutex<Vec<(String, DjangoApp)>>>,
    answers: Option<Answers>,
) {
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let gate = Arc::new(Gate::new(
        GateConfig::default(),
        HttpProber::new(),
        SdkAws::new(&sdk),
    ));
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
                let ip: IpAddr = t
                    .attachments()
                    .iter()
                    .flat_map(|a| a.details())
                    .find(|d| d.name() == Some("privateIPv4Address"))
                    .and_then(|d| d.value())
                    .and_then(|v| v.parse().ok())
                    .expect("an awsvpc task has a private IP");
                if let Some(setup) = release(revision, nth) {
                    let apps = apps.clone();
                    tokio::task::spawn_blocking(move || {
                        let app = DjangoApp::start(ip, port, setup);
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
                let (response, error, reason) = match gate.ecs_hook(payload, None).await {
                    Ok((response, record)) => (
                        serde_json::to_value(response).unwrap(),
                        false,
                        record.reason,
                    ),
                    Err(e) => (Value::Null, true, e.to_string()),
                };
                answers.lock().unwrap().push((response.clone(), reason));
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
