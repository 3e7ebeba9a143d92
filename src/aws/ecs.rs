//! The ECS port: what the gate reads of a service, its deployment, its green revision,
//! its tasks and the container instances they run on. Every answer is ECS's, never the
//! invocation's.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use serde_json::Value;

use super::{AwsError, Instances, TargetHealth};

/// A service deployment's `status`, as `DescribeServiceDeployments` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DeploymentStatus {
    /// `PENDING`: not started yet.
    Pending,
    /// `IN_PROGRESS`: the only status in which the gate checks anything.
    InProgress,
    /// `SUCCESSFUL`.
    Successful,
    /// `STOPPED`, `STOP_REQUESTED`: superseded or stopped (ECS's word kept).
    Stopped(String),
    /// `ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS`, `ROLLBACK_SUCCESSFUL`,
    /// `ROLLBACK_FAILED`: a rollback, which the gate never stands in the way of (ECS's
    /// word kept).
    RollingBack(String),
    /// Missing, or a status this gate does not know: never a reason to pass.
    Unknown(String),
}

impl DeploymentStatus {
    /// ECS's word for it.
    pub fn parse(status: Option<&str>) -> Self {
        match status.unwrap_or_default() {
            "PENDING" => Self::Pending,
            "IN_PROGRESS" => Self::InProgress,
            "SUCCESSFUL" => Self::Successful,
            s @ ("STOPPED" | "STOP_REQUESTED") => Self::Stopped(s.to_owned()),
            s @ ("ROLLBACK_REQUESTED"
            | "ROLLBACK_IN_PROGRESS"
            | "ROLLBACK_SUCCESSFUL"
            | "ROLLBACK_FAILED") => Self::RollingBack(s.to_owned()),
            other => Self::Unknown(other.to_owned()),
        }
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Successful => "SUCCESSFUL",
            Self::Unknown(s) if s.is_empty() => "(no status)",
            Self::Stopped(s) | Self::RollingBack(s) | Self::Unknown(s) => s,
        })
    }
}

/// A service deployment, as `DescribeServiceDeployments` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceDeploymentView {
    /// `serviceDeploymentArn`.
    pub arn: String,
    /// `serviceArn`.
    pub service_arn: String,
    /// `clusterArn`.
    pub cluster_arn: String,
    /// `status`.
    pub status: DeploymentStatus,
    /// `lifecycleStage`, when ECS gives it.
    pub lifecycle_stage: Option<String>,
    /// `targetServiceRevision.arn`: the green revision.
    pub target_revision_arn: Option<String>,
    /// `targetServiceRevision.requestedTaskCount`.
    pub requested_task_count: u32,
    /// `startedAt` (or `createdAt`), seconds since the Unix epoch.
    pub started_at: Option<u64>,
    /// `lifecycleHookDetails`: each hook's target and status, for the record only. AWS
    /// documents the field beside PAUSE hooks; whether Lambda hook executions appear in it
    /// is not documented, so nothing is decided on it.
    pub hooks: Vec<(String, String)>,
}

/// A lifecycle hook of a service's `deploymentConfiguration`, as `DescribeServices`
/// shows it: AWS's copy, which decides; the invocation's is a claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfiguredHook {
    /// `hookTargetArn`: the function ECS invokes (perhaps with a version or alias).
    pub target_arn: String,
    /// `lifecycleStages`.
    pub stages: Vec<String>,
    /// `hookDetails`, as ECS stores it (a JSON object, or a JSON string holding one).
    pub hook_details: Option<Value>,
    /// `timeoutConfiguration.timeoutInMinutes` (1-1440; ECS's default 1440 when absent).
    pub timeout_minutes: Option<u32>,
    /// `timeoutConfiguration.action` (`ROLLBACK`, the default, or `CONTINUE`).
    pub timeout_action: Option<String>,
}

/// A load balancer entry of a service or revision (`loadBalancers[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadBalancerEntry {
    /// `targetGroupArn`.
    pub target_group_arn: Option<String>,
    /// `advancedConfiguration.alternateTargetGroupArn` (blue/green).
    pub alternate_target_group_arn: Option<String>,
    /// `containerName`.
    pub container_name: Option<String>,
    /// `containerPort`.
    pub container_port: Option<u16>,
}

/// One entry of `DescribeServices`' `deployments[]`: the tasks one deployment started.
/// Its `id` is what those tasks carry in `startedBy` (the API reference: "the deployment
/// ID of the service that starts it").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDeployment {
    /// `id`, for example `ecs-svc/1234567890123456789`.
    pub id: String,
    /// `status`: `PRIMARY` (the most recent), `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `taskDefinition`.
    pub task_definition: String,
}

/// A service, as `DescribeServices` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceView {
    /// `serviceArn`.
    pub arn: String,
    /// `deploymentConfiguration.lifecycleHooks[]`.
    pub hooks: Vec<ConfiguredHook>,
    /// `deployments[]`.
    pub deployments: Vec<TaskDeployment>,
    /// `loadBalancers[]`.
    pub load_balancers: Vec<LoadBalancerEntry>,
}

/// The green revision, as `DescribeServiceRevisions` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceRevisionView {
    /// `serviceRevisionArn`.
    pub arn: String,
    /// `taskDefinition`: its tasks run this task definition.
    pub task_definition: String,
    /// `resolvedConfiguration.loadBalancers[0].targetGroupArn`: the target group the
    /// revision's tasks serve from, when ECS gives it (AWS does not say it always does).
    pub resolved_target_group_arn: Option<String>,
    /// `loadBalancers[]`.
    pub load_balancers: Vec<LoadBalancerEntry>,
}

impl ServiceRevisionView {
    /// The first load balancer entry with a container port: the one whose target groups
    /// the gate checks.
    pub fn load_balancer(&self) -> Option<&LoadBalancerEntry> {
        self.load_balancers
            .iter()
            .find(|l| l.container_port.is_some() && l.target_group_arn.is_some())
    }
}

/// How a task is reached, by its network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// `awsvpc` (Fargate, or EC2): the task has its own ENI and is an IP target.
    Awsvpc,
    /// `bridge` or `host` on an EC2 container instance: the task has no ENI and is an
    /// instance target on its host port.
    HostPort,
}

/// A port a container publishes on its host (bridge and host network modes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    /// The container's name.
    pub container_name: String,
    /// `containerPort`.
    pub container_port: u16,
    /// `hostPort`: the port on the container instance (dynamic in bridge mode).
    pub host_port: u16,
}

/// A task of the service, as `DescribeTasks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    /// `taskArn`.
    pub arn: String,
    /// `taskDefinitionArn`.
    pub task_definition: String,
    /// `lastStatus`: `PROVISIONING`, `PENDING`, `RUNNING`, `STOPPED`, ...
    pub last_status: String,
    /// `startedBy`: for a service's task, the id of the deployment that started it.
    pub started_by: Option<String>,
    /// The `privateIPv4Address` of its ENI attachment (awsvpc only).
    pub private_ip: Option<IpAddr>,
    /// `containerInstanceArn` (tasks on EC2 container instances).
    pub container_instance_arn: Option<String>,
    /// Its containers' `networkBindings` (bridge and host network modes).
    pub bindings: Vec<PortBinding>,
}

/// One target of a target group and its health, as `DescribeTargetHealth` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetEntry {
    /// `Target.Id`: an IP address or an instance id.
    pub id: String,
    /// `Target.Port`.
    pub port: Option<u16>,
    /// `TargetHealth`.
    pub health: TargetHealth,
}

/// A task as its load balancer sees it, and where the gate reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskTarget {
    /// `taskArn`.
    pub task_arn: String,
    /// How it is reached.
    pub mode: NetworkMode,
    /// The target's `Id` in the target group: the task's IP (awsvpc) or the container
    /// instance's EC2 instance id (bridge, host).
    pub target_id: String,
    /// The target's `Port`: the container port (awsvpc) or the host port (bridge, host).
    pub target_port: u16,
    /// The address probed: the task's IP, or the container instance's private IP.
    pub ip: IpAddr,
    /// The port the deep health check goes to: `health_port` itself (awsvpc), or the host
    /// port it is published on (bridge, host).
    pub health_port: Result<u16, String>,
}

impl TaskTarget {
    /// `Host` as the load balancer sends it to this target: `<ip>:<port>`.
    pub fn host(&self) -> String {
        SocketAddr::new(self.ip, self.target_port).to_string()
    }
}

/// Each running task's target: its ENI's IP (awsvpc), or its container instance's private
/// IP and the host port its load-balanced container port is published on (bridge, host).
/// A task with neither is left out (it is not a target yet).
///
/// # Errors
/// [`AwsError`] when ECS or EC2 cannot be read.
pub async fn task_targets<A: EcsDeployments + Instances>(
    aws: &A,
    cluster: &str,
    tasks: &[&TaskView],
    lb: &LoadBalancerEntry,
    health_port: u16,
) -> Result<Vec<TaskTarget>, AwsError> {
    let Some(container_port) = lb.container_port else {
        return Ok(Vec::new());
    };
    let on_instances: Vec<String> = tasks
        .iter()
        .filter(|t| t.private_ip.is_none())
        .filter_map(|t| t.container_instance_arn.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut instance_of = BTreeMap::new();
    let mut ip_of = BTreeMap::new();
    if !on_instances.is_empty() {
        instance_of.extend(aws.container_instances(cluster, &on_instances).await?);
        let ids: Vec<String> = instance_of.values().cloned().collect();
        for (id, info) in aws.describe_instances(&ids).await? {
            if let Some(ip) = info
                .private_ip
                .filter(|ip| !crate::probe::is_never_probed(*ip))
            {
                ip_of.insert(id, ip);
            }
        }
    }
    let mut found = Vec::new();
    for t in tasks {
        if let Some(ip) = t
            .private_ip
            .filter(|ip| !crate::probe::is_never_probed(*ip))
        {
            found.push(TaskTarget {
                task_arn: t.arn.clone(),
                mode: NetworkMode::Awsvpc,
                target_id: ip.to_string(),
                target_port: container_port,
                ip,
                health_port: Ok(health_port),
            });
            continue;
        }
        let Some(instance) = t
            .container_instance_arn
            .as_ref()
            .and_then(|arn| instance_of.get(arn))
        else {
            continue;
        };
        let Some(ip) = ip_of.get(instance) else {
            continue;
        };
        let bound = |port: u16| {
            t.bindings
                .iter()
                .find(|b| {
                    b.container_port == port
                        && lb
                            .container_name
                            .as_ref()
                            .is_none_or(|n| n == &b.container_name)
                })
                .or_else(|| t.bindings.iter().find(|b| b.container_port == port))
                .map(|b| b.host_port)
        };
        let Some(target_port) = bound(container_port) else {
            continue;
        };
        found.push(TaskTarget {
            task_arn: t.arn.clone(),
            mode: NetworkMode::HostPort,
            target_id: instance.clone(),
            target_port,
            ip: *ip,
            health_port: bound(health_port).ok_or_else(|| {
                format!(
                    "health_port {health_port} is not published by task {} (its network bindings: {}); with bridge or host networking set health_port to a container port the task publishes, such as the load balancer's {container_port}",
                    t.arn,
                    if t.bindings.is_empty() {
                        "none".to_owned()
                    } else {
                        t.bindings
                            .iter()
                            .map(|b| format!("{}->{}", b.container_port, b.host_port))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            }),
        });
    }
    Ok(found)
}

/// ECS: `DescribeServices`, `DescribeServiceDeployments`, `DescribeServiceRevisions`,
/// `ListTasks`, `DescribeTasks`, `DescribeContainerInstances`; and ELB's
/// `DescribeTargetHealth` of a whole target group.
pub trait EcsDeployments: Send + Sync {
    /// The service `service` of `cluster`; `None` when ECS does not know it.
    fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Option<ServiceView>, AwsError>> + Send;

    /// The deployment `arn`; `None` when ECS does not know it.
    fn describe_service_deployment(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ServiceDeploymentView>, AwsError>> + Send;

    /// The revision `arn`; `None` when ECS does not know it.
    fn describe_service_revision(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ServiceRevisionView>, AwsError>> + Send;

    /// The service's tasks in `cluster` whose desired status is `RUNNING` (`ListTasks`
    /// with `serviceName`, every page, then `DescribeTasks` 100 at a time).
    fn service_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Vec<TaskView>, AwsError>> + Send;

    /// The EC2 instance id of each container instance in `arns` of `cluster`
    /// (`DescribeContainerInstances`, 100 at a time): (container instance ARN, instance id).
    fn container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, AwsError>> + Send;

    /// Every target registered in `target_group_arn` and its health: one
    /// `DescribeTargetHealth` without a target filter.
    fn target_group_health(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Vec<TargetEntry>, AwsError>> + Send;
}

/// Whether `hook_target` (a hook's `hookTargetArn`) names the function invoked as
/// `invoked` (the invocation context's `invoked_function_arn`). Lambda ARNs are
/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`; the
/// partition, region, account and name must be equal, and so must the qualifiers, where
/// no qualifier and `$LATEST` are the same version. Lambda always gives the function an
/// ARN; an emulated runtime may not, and then `invoked` is the function's bare name
/// (`AWS_LAMBDA_FUNCTION_NAME`), which matches an unqualified target of that name.
pub fn same_function(hook_target: &str, invoked: &str) -> bool {
    if !invoked.starts_with("arn:") {
        return !invoked.is_empty()
            && hook_target
                .strip_prefix("arn:")
                .and_then(|rest| rest.rsplit_once(":function:"))
                .is_some_and(|(_, name)| name == invoked);
    }
    fn parts(arn: &str) -> Option<(&str, &str, &str, &str, &str)> {
        let mut p = arn.splitn(8, ':');
        let (scheme, partition, service, region, account, kind, name) = (
            p.next()?,
            p.next()?,
            p.next()?,
            p.next()?,
            p.next()?,
            p.next()?,
            p.next()?,
        );
        if scheme != "arn" || service != "lambda" || kind != "function" || name.is_empty() {
            return None;
        }
        let qualifier = match p.next() {
            None | Some("$LATEST") => "",
            Some(q) => q,
        };
        Some((partition, region, account, name, qualifier))
    }
    matches!((parts(hook_target), parts(invoked)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_names_the_function_with_its_qualifier() {
        let f = "arn:aws:lambda:us-east-1:123456789012:function:gate";
        assert!(same_function(f, f));
        assert!(same_function(f, &format!("{f}:$LATEST")));
        assert!(same_function(&format!("{f}:live"), &format!("{f}:live")));
        assert!(!same_function(&format!("{f}:live"), f));
        assert!(!same_function(f, &format!("{f}:live")));
        assert!(!same_function(
            f,
            "arn:aws:lambda:us-east-1:123456789012:function:gate-2"
        ));
        assert!(!same_function(
            f,
            "arn:aws:lambda:eu-west-1:123456789012:function:gate"
        ));
        assert!(!same_function(
            f,
            "arn:aws:lambda:us-east-1:210987654321:function:gate"
        ));
        assert!(!same_function("gate", "gate"));
        // an emulated runtime without an ARN: the bare name, unqualified targets only
        assert!(same_function(f, "gate"));
        assert!(!same_function(&format!("{f}:live"), "gate"));
        assert!(!same_function(f, ""));
    }

    #[test]
    fn statuses_are_read_and_unknown_ones_kept() {
        assert_eq!(
            DeploymentStatus::parse(Some("IN_PROGRESS")),
            DeploymentStatus::InProgress
        );
        assert_eq!(
            DeploymentStatus::parse(Some("ROLLBACK_IN_PROGRESS")),
            DeploymentStatus::RollingBack("ROLLBACK_IN_PROGRESS".into())
        );
        assert_eq!(
            DeploymentStatus::parse(None),
            DeploymentStatus::Unknown(String::new())
        );
        assert_eq!(DeploymentStatus::parse(Some("NEW")).to_string(), "NEW");
        assert_eq!(DeploymentStatus::InProgress.to_string(), "IN_PROGRESS");
    }
}
