//! The green tasks of an ECS deployment, found from ECS's and ELB's answers only: the
//! service's deployment that started them (never the task definition alone), the target
//! group that holds them (never an assumption about which of the two is "alternate"), and
//! each one's target, in every network mode.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

pub use crate::aws::ecs::NetworkMode;
use crate::aws::ecs::{
    EcsDeployments, LoadBalancerEntry, ServiceRevisionView, ServiceView, TargetEntry, TaskView,
};
use crate::aws::{AwsError, Instances, TargetHealth};

/// At most this many green tasks are checked: a deployment of more is refused with a
/// clear `FAILED`, never checked in part.
pub const MAX_TASKS: usize = 100;

/// A green task as the load balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GreenTarget {
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

impl GreenTarget {
    /// `Host` as the load balancer sends it to this target: `<ip>:<port>`.
    pub fn host(&self) -> String {
        SocketAddr::new(self.ip, self.target_port).to_string()
    }
}

/// What ECS and ELB show of the green tasks now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Green {
    /// `DescribeServices`' deployment whose tasks are green: its `id` (their `startedBy`).
    pub deployment_id: Option<String>,
    /// The green target group, and how it was found.
    pub target_group_arn: Option<String>,
    /// `resolvedConfiguration`, or the target group that holds the green tasks.
    pub target_group_source: Option<&'static str>,
    /// Every task the green deployment started, by `lastStatus`.
    pub by_status: BTreeMap<String, u32>,
    /// Running green tasks registered in the green target group, with their health there.
    pub registered: Vec<(GreenTarget, TargetHealth)>,
    /// Running green tasks that are not (yet) registered there.
    pub unregistered: Vec<String>,
    /// Why no green task can be found at all, when none can.
    pub note: Option<String>,
    /// More green tasks than [`MAX_TASKS`].
    pub too_many: Option<usize>,
}

impl Green {
    /// `2 RUNNING, 1 PENDING`.
    pub fn status_words(&self) -> String {
        if self.by_status.is_empty() {
            return "none started".into();
        }
        self.by_status
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The entry of `DescribeServices`' `deployments[]` whose tasks are the green ones: the
/// `PRIMARY` deployment (the API reference: the most recent one), which must run the green
/// revision's task definition. A task carries its id in `startedBy`.
pub fn green_deployment<'a>(
    service: &'a ServiceView,
    revision: &ServiceRevisionView,
) -> Result<&'a str, String> {
    let primary = service.deployments.iter().find(|d| d.status == "PRIMARY");
    match primary {
        Some(d) if d.task_definition == revision.task_definition && !d.id.is_empty() => {
            Ok(d.id.as_str())
        }
        Some(d) => Err(format!(
            "the service's PRIMARY deployment {} runs {}, not the green revision's {}",
            d.id, d.task_definition, revision.task_definition
        )),
        None => Err("ECS lists no PRIMARY deployment for the service".into()),
    }
}

/// The green revision's load balancer entry: the revision's, else the service's.
pub fn load_balancer<'a>(
    service: &'a ServiceView,
    revision: &'a ServiceRevisionView,
) -> Option<&'a LoadBalancerEntry> {
    revision.load_balancer().or_else(|| {
        service
            .load_balancers
            .iter()
            .find(|l| l.container_port.is_some() && l.target_group_arn.is_some())
    })
}

/// Reads the green tasks: their deployment, their targets, the target group that holds
/// them and their health there, with one `DescribeTargetHealth` per target group looked
/// at (one when ECS names the green target group, at most two when it does not).
///
/// # Errors
/// [`AwsError`] when ECS, EC2 or ELB cannot be read.
pub async fn read<A: EcsDeployments + Instances>(
    aws: &A,
    cluster: &str,
    service_name: &str,
    service: &ServiceView,
    revision: &ServiceRevisionView,
    health_port: u16,
) -> Result<Green, AwsError> {
    let mut green = Green::default();
    let id = match green_deployment(service, revision) {
        Ok(id) => id.to_owned(),
        Err(why) => {
            green.note = Some(why);
            return Ok(green);
        }
    };
    green.deployment_id = Some(id.clone());
    let tasks: Vec<TaskView> = aws
        .service_tasks(cluster, service_name)
        .await?
        .into_iter()
        .filter(|t| t.started_by.as_deref() == Some(id.as_str()))
        .collect();
    for t in &tasks {
        *green.by_status.entry(t.last_status.clone()).or_default() += 1;
    }
    if tasks.len() > MAX_TASKS {
        green.too_many = Some(tasks.len());
        return Ok(green);
    }
    let running: Vec<&TaskView> = tasks
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .collect();
    let Some(lb) = load_balancer(service, revision) else {
        // No target group (a headless, Service Connect or VPC Lattice service): every
        // running green task is checked on health_port, deep health alone.
        let headless = LoadBalancerEntry {
            container_port: Some(health_port),
            ..LoadBalancerEntry::default()
        };
        for t in targets(aws, cluster, &running, &headless, health_port).await? {
            let health = TargetHealth {
                state: "unused".into(),
                reason: None,
                description: Some("no target group: the service has no load balancer".into()),
            };
            green.registered.push((t, health));
        }
        for t in &running {
            if !green.registered.iter().any(|(g, _)| g.task_arn == t.arn) {
                green.unregistered.push(t.arn.clone());
            }
        }
        return Ok(green);
    };
    let targets = targets(aws, cluster, &running, lb, health_port).await?;
    // The target group: ECS's answer, else the one of the two that holds the green tasks.
    let candidates: Vec<(&str, &'static str)> = match &revision.resolved_target_group_arn {
        Some(arn) => vec![(arn.as_str(), "resolvedConfiguration")],
        None => [&lb.target_group_arn, &lb.alternate_target_group_arn]
            .into_iter()
            .flatten()
            .map(|arn| (arn.as_str(), "the target group that holds the green tasks"))
            .collect(),
    };
    let mut best: Option<(usize, &str, &'static str, Vec<TargetEntry>)> = None;
    for (arn, source) in candidates {
        let entries = aws.target_group_health(arn).await?;
        let held = targets
            .iter()
            .filter(|t| find(&entries, t).is_some())
            .count();
        if best.as_ref().is_none_or(|b| held > b.0) {
            best = Some((held, arn, source, entries));
        }
    }
    let Some((_, arn, source, entries)) = best else {
        green.note = Some("the green revision's load balancer names no target group".into());
        return Ok(green);
    };
    green.target_group_arn = Some(arn.to_owned());
    green.target_group_source = Some(source);
    for t in targets {
        match find(&entries, &t) {
            // A draining target is on its way out: not a green task that serves.
            Some(e) if e.health.state != "draining" => green.registered.push((t, e.health.clone())),
            _ => green.unregistered.push(t.task_arn),
        }
    }
    if running.len() > green.registered.len() + green.unregistered.len() {
        // Running tasks without a target (no IP yet, no binding): not registered either.
        for t in &running {
            let known = green.registered.iter().any(|(g, _)| g.task_arn == t.arn)
                || green.unregistered.contains(&t.arn);
            if !known {
                green.unregistered.push(t.arn.clone());
            }
        }
    }
    Ok(green)
}

fn find<'a>(entries: &'a [TargetEntry], t: &GreenTarget) -> Option<&'a TargetEntry> {
    entries
        .iter()
        .find(|e| e.id == t.target_id && e.port.is_none_or(|p| p == t.target_port))
}

/// Each running task's target: its ENI's IP (awsvpc), or its container instance's private
/// IP and the host port its load-balanced container port is published on (bridge, host).
/// A task with neither is left out (it is not a target yet).
///
/// # Errors
/// [`AwsError`] when ECS or EC2 cannot be read.
pub async fn targets<A: EcsDeployments + Instances>(
    aws: &A,
    cluster: &str,
    tasks: &[&TaskView],
    lb: &LoadBalancerEntry,
    health_port: u16,
) -> Result<Vec<GreenTarget>, AwsError> {
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
                .filter(|ip| !crate::probe::is_link_local(*ip))
            {
                ip_of.insert(id, ip);
            }
        }
    }
    let mut found = Vec::new();
    for t in tasks {
        if let Some(ip) = t.private_ip.filter(|ip| !crate::probe::is_link_local(*ip)) {
            found.push(GreenTarget {
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
        found.push(GreenTarget {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ecs::TaskDeployment;

    fn service(deployments: &[(&str, &str, &str)]) -> ServiceView {
        ServiceView {
            deployments: deployments
                .iter()
                .map(|(id, status, td)| TaskDeployment {
                    id: (*id).into(),
                    status: (*status).into(),
                    task_definition: (*td).into(),
                })
                .collect(),
            ..ServiceView::default()
        }
    }

    #[test]
    fn the_green_tasks_are_the_primary_deployments_never_the_task_definitions() {
        let revision = ServiceRevisionView {
            task_definition: "td:1".into(),
            ..ServiceRevisionView::default()
        };
        // a redeploy of the same task definition: blue and green share it
        let s = service(&[
            ("ecs-svc/2", "PRIMARY", "td:1"),
            ("ecs-svc/1", "ACTIVE", "td:1"),
        ]);
        assert_eq!(green_deployment(&s, &revision), Ok("ecs-svc/2"));
        let s = service(&[("ecs-svc/1", "PRIMARY", "td:0")]);
        assert!(
            green_deployment(&s, &revision)
                .unwrap_err()
                .contains("not the green")
        );
        assert!(green_deployment(&service(&[]), &revision).is_err());
    }
}
