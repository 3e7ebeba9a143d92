//! The green tasks of an ECS deployment, found from ECS's and ELB's answers only: the
//! service's deployment that started them (never the task definition alone), the target
//! group that holds them (never an assumption about which of the two is "alternate"), and
//! each one's target, in every network mode.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::aws::ecs::NetworkMode;
use crate::aws::ecs::{
    EcsDeployments, LoadBalancerEntry, ServiceRevisionView, ServiceView, TargetEntry, TaskTarget,
    TaskView, task_targets,
};
use crate::aws::{AwsError, Instances, TargetHealth};

/// At most this many green tasks are checked: a deployment of more is refused with a
/// clear `FAILED`, never checked in part.
pub const MAX_TASKS: usize = 100;

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
    pub registered: Vec<(TaskTarget, TargetHealth)>,
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
        for t in task_targets(aws, cluster, &running, &headless, health_port).await? {
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
    let targets = task_targets(aws, cluster, &running, lb, health_port).await?;
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

fn find<'a>(entries: &'a [TargetEntry], t: &TaskTarget) -> Option<&'a TargetEntry> {
    entries
        .iter()
        .find(|e| e.id == t.target_id && e.port.is_none_or(|p| p == t.target_port))
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

    /// ECS and EC2 as a table: the service's tasks, its container instances, the
    /// instances' IPs, one target group's targets.
    struct Fake {
        tasks: Vec<TaskView>,
        targets: Vec<TargetEntry>,
    }

    impl EcsDeployments for Fake {
        async fn describe_service(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<ServiceView>, AwsError> {
            unreachable!()
        }
        async fn describe_service_deployment(
            &self,
            _: &str,
        ) -> Result<Option<crate::aws::ecs::ServiceDeploymentView>, AwsError> {
            unreachable!()
        }
        async fn describe_service_revision(
            &self,
            _: &str,
        ) -> Result<Option<ServiceRevisionView>, AwsError> {
            unreachable!()
        }
        async fn service_tasks(&self, _: &str, _: &str) -> Result<Vec<TaskView>, AwsError> {
            Ok(self.tasks.clone())
        }
        async fn container_instances(
            &self,
            _: &str,
            arns: &[String],
        ) -> Result<Vec<(String, String)>, AwsError> {
            Ok(arns
                .iter()
                .map(|a| (a.clone(), "i-0abc".to_owned()))
                .collect())
        }
        async fn target_group_health(&self, _: &str) -> Result<Vec<TargetEntry>, AwsError> {
            Ok(self.targets.clone())
        }
    }

    impl Instances for Fake {
        async fn describe_instance(
            &self,
            _: &str,
        ) -> Result<Option<crate::aws::InstanceInfo>, AwsError> {
            unreachable!()
        }
        async fn claim(&self, _: &str, _: u64) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn tag_decision(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn describe_instances(
            &self,
            ids: &[String],
        ) -> Result<Vec<(String, crate::aws::InstanceInfo)>, AwsError> {
            Ok(ids
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        crate::aws::InstanceInfo {
                            state: "running".into(),
                            private_ip: Some("10.0.1.7".parse().unwrap()),
                            group_name: None,
                            claimed_until: None,
                            launch_template: None,
                            decision: None,
                            launched_at: None,
                        },
                    )
                })
                .collect())
        }
    }

    fn task(n: usize, started_by: &str, status: &str) -> TaskView {
        TaskView {
            arn: format!("arn:aws:ecs:us-east-1:1:task/shop/{n}"),
            task_definition: "td:1".into(),
            last_status: status.into(),
            started_by: Some(started_by.into()),
            private_ip: None,
            container_instance_arn: Some("arn:ci/1".into()),
            bindings: vec![crate::aws::ecs::PortBinding {
                container_name: "web".into(),
                container_port: 8000,
                host_port: 32800 + n as u16,
            }],
        }
    }

    fn entry(id: &str, port: u16, state: &str) -> TargetEntry {
        TargetEntry {
            id: id.into(),
            port: Some(port),
            health: TargetHealth {
                state: state.into(),
                reason: None,
                description: None,
            },
        }
    }

    fn revision() -> ServiceRevisionView {
        ServiceRevisionView {
            task_definition: "td:1".into(),
            resolved_target_group_arn: Some("arn:tg/green".into()),
            load_balancers: vec![LoadBalancerEntry {
                target_group_arn: Some("arn:tg/blue".into()),
                alternate_target_group_arn: Some("arn:tg/green".into()),
                container_name: Some("web".into()),
                container_port: Some(8000),
            }],
            ..ServiceRevisionView::default()
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn bridge_tasks_are_instance_targets_on_their_host_ports_and_blue_never_counts() {
        let fake = Fake {
            tasks: vec![
                task(1, "ecs-svc/2", "RUNNING"),
                task(2, "ecs-svc/2", "PENDING"),
                // blue: same task definition, another deployment
                task(3, "ecs-svc/1", "RUNNING"),
            ],
            targets: vec![
                entry("i-0abc", 32801, "healthy"),
                entry("i-0abc", 32803, "healthy"),
            ],
        };
        let s = service(&[
            ("ecs-svc/2", "PRIMARY", "td:1"),
            ("ecs-svc/1", "ACTIVE", "td:1"),
        ]);
        let green = run(read(&fake, "shop", "web", &s, &revision(), 8000)).unwrap();
        assert_eq!(green.deployment_id.as_deref(), Some("ecs-svc/2"));
        assert_eq!(green.status_words(), "1 PENDING, 1 RUNNING");
        assert_eq!(green.registered.len(), 1);
        let (t, _) = &green.registered[0];
        assert_eq!(
            (t.mode, t.target_id.as_str(), t.target_port),
            (NetworkMode::HostPort, "i-0abc", 32801)
        );
        assert_eq!(t.host(), "10.0.1.7:32801");
        assert_eq!(t.health_port, Ok(32801));
        // health_port not published by the task: a configuration error naming its bindings
        let green = run(read(&fake, "shop", "web", &s, &revision(), 9000)).unwrap();
        let why = green.registered[0].0.health_port.clone().unwrap_err();
        assert!(why.contains("8000->32801"), "{why}");
    }

    #[test]
    fn more_green_tasks_than_the_gate_checks_is_said() {
        let fake = Fake {
            tasks: (0..=MAX_TASKS)
                .map(|n| task(n, "ecs-svc/2", "RUNNING"))
                .collect(),
            targets: Vec::new(),
        };
        let s = service(&[("ecs-svc/2", "PRIMARY", "td:1")]);
        let green = run(read(&fake, "shop", "web", &s, &revision(), 8000)).unwrap();
        assert_eq!(green.too_many, Some(MAX_TASKS + 1));
        assert!(green.registered.is_empty());
    }
}
