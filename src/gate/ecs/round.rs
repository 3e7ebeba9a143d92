//! One round against every green task, through the engine's rule: each task's round
//! (the deep health check, the green target group's own check as the load balancer sends
//! it, and the load balancer's verdict for it there) is one sample of that task's
//! [`Tally`], judged by [`Tally::verdict`] with the same thresholds, grace period and
//! wait as an instance's.

use futures::stream::{self, StreamExt};

use super::green::{Green, NetworkMode};
use super::*;
use crate::aws::TargetHealth;
use crate::aws::ecs::TaskTarget;
use crate::policy::Tally;

/// Green tasks probed at once.
pub const CONCURRENT_TASKS: usize = 8;

/// The gate's verdict on the green tasks, in its own words; the hold words it for ECS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsVerdict {
    /// Every green task met the healthy threshold.
    Pass(String),
    /// A green task met the unhealthy threshold, or the wait ended first, or the
    /// deployment cannot be checked as configured.
    Fail(String),
    /// Not settled: ask again.
    Wait(String),
}

/// One task's round, as it left it.
struct TaskRound {
    target: TaskTarget,
    round: Round,
    scratch: DecisionRecord,
}

impl<P: Prober, A: Aws + EcsDeployments> Gate<P, A> {
    /// One round against every registered green task, each judged by the engine's rule.
    /// `tg` is the green target group's settings (its own health check is run when
    /// `target_group_checks` is on).
    pub(super) async fn ecs_checks(
        &self,
        config: &GateConfig,
        green: &Green,
        tg: Option<&TargetGroupSettings>,
        elapsed: Duration,
        state: &mut EcsWaitState,
        record: &mut DecisionRecord,
    ) -> EcsVerdict {
        let policy = HealthPolicy {
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            grace_period: config.grace_period,
            deadline: config.max_wait,
        };
        let out_of_time = elapsed >= config.max_wait;
        let within = format!("within {} s", whole_seconds(config.max_wait));
        if let Some((target, why)) = green
            .registered
            .iter()
            .find_map(|(t, _)| t.health_port.as_ref().err().map(|e| (t, e.clone())))
        {
            return EcsVerdict::Fail(format!(
                "configuration error for green task {}: {why}",
                target.task_arn
            ));
        }
        let template = record.clone();
        let rounds: Vec<TaskRound> = stream::iter(green.registered.iter().cloned())
            .map(|(target, health)| {
                let mut scratch = DecisionRecord {
                    probes: Vec::new(),
                    probe_count: 0,
                    ..template.clone()
                };
                async move {
                    let round = self
                        .task_round(config, policy, tg, &target, &health, elapsed, &mut scratch)
                        .await;
                    TaskRound {
                        target,
                        round,
                        scratch,
                    }
                }
            })
            .buffer_unordered(CONCURRENT_TASKS)
            .collect()
            .await;
        state
            .tasks
            .retain(|arn, _| green.registered.iter().any(|(t, _)| &t.task_arn == arn));
        let mut failing: Option<(Verdict, TaskRound, Tally)> = None;
        let mut passing = 0;
        let mut rounds = rounds;
        rounds.sort_by(|a, b| a.target.task_arn.cmp(&b.target.task_arn));
        for r in rounds {
            for p in &r.scratch.probes {
                record.push_probe(p.clone());
            }
            for tg_record in r.scratch.target_groups.iter() {
                if !record
                    .target_groups
                    .iter()
                    .any(|t| t.name == tg_record.name)
                {
                    record.target_groups.push(tg_record.clone());
                }
            }
            let tally = state.tasks.entry(r.target.task_arn.clone()).or_default();
            let mut cause = None;
            match &r.round {
                Round::Passed => tally.observe(sample(elapsed, true), &policy),
                Round::Failed { diagnosis, .. } => {
                    tally.observe(sample(elapsed, false), &policy);
                    cause = diagnosis.as_ref().map(|d| d.code);
                }
                Round::Undetermined | Round::ConfigurationError(_) => {}
            }
            let tally = *tally;
            if let Some(e) = record.ecs.as_mut() {
                e.tasks.push(EcsTaskRecord {
                    arn: r.target.task_arn.clone(),
                    network_mode: r.target.mode,
                    target: format!("{}:{}", r.target.target_id, r.target.target_port),
                    private_ip: r.target.ip.to_string(),
                    passes: tally.passes,
                    failures: tally.failures,
                    cause,
                });
            }
            if let Round::ConfigurationError(why) = &r.round {
                return EcsVerdict::Fail(why.clone());
            }
            let verdict = tally.verdict(&policy, elapsed);
            match verdict {
                Verdict::Continue => passing += 1,
                Verdict::Pending if !matches!(r.round, Round::Failed { .. }) => {}
                _ => {
                    // The task to name: one the rule abandons, else the last failing one.
                    let worse = match &failing {
                        None => true,
                        Some((v, _, _)) => {
                            matches!(verdict, Verdict::Abandon(_))
                                && !matches!(v, Verdict::Abandon(_))
                        }
                    };
                    if worse {
                        failing = Some((verdict, r, tally));
                    }
                }
            }
        }
        let healthy = config.healthy_threshold.max(1);
        if let Some((verdict, r, tally)) = failing {
            let Round::Failed {
                diagnosis, failure, ..
            } = r.round
            else {
                unreachable!("only a failed round is named");
            };
            let diagnosis = diagnosis.map(|d| for_network_mode(d, r.target.mode));
            let what = format!("green task {} ({})", r.target.task_arn, r.target.host());
            let head = match verdict {
                Verdict::Abandon(AbandonReason::UnhealthyThreshold {
                    consecutive_failures,
                }) => Some(format!(
                    "{consecutive_failures} consecutive rounds of {what} failed after the grace period"
                )),
                Verdict::Abandon(AbandonReason::DeadlineExceeded { .. }) => Some(format!(
                    "no {healthy} consecutive passing rounds on every green task {within}; {what} fails"
                )),
                _ => None,
            };
            let words = |head: &str| match &diagnosis {
                Some(c) => format!("{head}: {}. Fix: {}", c.summary, c.fix),
                None => head.to_owned(),
            };
            record.last_failure = Some(failure);
            record.cause = diagnosis.clone();
            if let Verdict::Abandon(why) = verdict {
                record.abandon_reason = Some(why);
            }
            return match head {
                Some(head) => EcsVerdict::Fail(words(&head)),
                None => EcsVerdict::Wait(words(&format!(
                    "{what} failed a round ({} of {} failures counted)",
                    tally.failures,
                    config.unhealthy_threshold.max(1)
                ))),
            };
        }
        if passing == green.registered.len() {
            return EcsVerdict::Pass(format!(
                "{healthy} consecutive rounds passed on each of the {} green tasks: the deep health check{}",
                passing,
                match tg {
                    Some(tg) => format!(
                        ", target group {}'s health check and the load balancer's own verdict there",
                        tg.name
                    ),
                    None => String::new(),
                }
            ));
        }
        if out_of_time {
            return EcsVerdict::Fail(format!(
                "no {healthy} consecutive passing rounds on every green task {within}"
            ));
        }
        EcsVerdict::Wait(format!(
            "{passing} of {} green tasks passed {healthy} consecutive rounds",
            green.registered.len()
        ))
    }

    /// One green task's round: its checks at once, then the load balancer's verdict for
    /// it in the green target group (read once for every task of the round).
    #[allow(clippy::too_many_arguments)]
    async fn task_round(
        &self,
        config: &GateConfig,
        policy: HealthPolicy,
        tg: Option<&TargetGroupSettings>,
        target: &TaskTarget,
        health: &TargetHealth,
        elapsed: Duration,
        scratch: &mut DecisionRecord,
    ) -> Round {
        let mut deep = ProbeRequest::deep_health(config, target.ip);
        if let Ok(port) = target.health_port {
            deep.port = port;
            if config.host_header.is_none() {
                deep.host = std::net::SocketAddr::new(target.ip, port).to_string();
            }
        }
        let mut checks = vec![Check {
            label: CheckLabel::DeepHealth,
            request: deep,
        }];
        let mut tg_request = None;
        if let Some(tg) = tg.filter(|_| config.target_group_checks) {
            let settings = TargetGroupSettings {
                port: Some(target.target_port),
                ..tg.clone()
            };
            if let Ok(request) =
                ProbeRequest::for_target_group(&settings, target.ip, config.body_limit_bytes)
            {
                tg_request = Some(request.clone());
                checks.push(Check {
                    label: CheckLabel::TargetGroup(tg.name.clone()),
                    request,
                });
            }
        }
        let wait = Wait {
            config,
            policy,
            checks: &checks,
            validation: None,
            baseline: None,
        };
        let round = match self.round(&wait, &target.target_id, scratch, elapsed).await {
            Ok(r) => r,
            Err(e) => return Round::ConfigurationError(e.to_string()),
        };
        // The load balancer's own verdict, when it has one.
        let name = tg.map_or("the green target group", |t| t.name.as_str());
        let request = tg_request.as_ref().unwrap_or(&checks[0].request);
        match (health.state.as_str(), health.reason.as_deref(), round) {
            (_, _, failed @ Round::Failed { .. }) => failed,
            ("healthy", _, round) => round,
            ("initial", _, _) => Round::Undetermined,
            (_, Some("Elb.InternalError"), _) => Round::Undetermined,
            // No listener forwards to it yet, or its checks are off: no verdict to read.
            ("unused" | "unavailable", _, round) => round,
            _ => Round::Failed {
                diagnosis: crate::diagnosis::diagnose_target_health(name, health, request),
                failure: LastFailure {
                    status: None,
                    location: None,
                    body_snippet: health.to_string(),
                },
                also: Vec::new(),
                check: None,
            },
        }
    }
}

fn sample(at: Duration, passed: bool) -> ProbeSample {
    ProbeSample {
        at,
        passed,
        excused: false,
    }
}

/// The diagnosis with a fix for a task, not an instance: where its IP comes from.
pub fn for_network_mode(mut d: Diagnosis, mode: NetworkMode) -> Diagnosis {
    if d.code == "host_rejected" {
        d.fix = match mode {
            NetworkMode::Awsvpc => "Add the task's private IP to the allowed hosts at start-up (Django: append it to ALLOWED_HOSTS), read from the task metadata endpoint v4 ($ECS_CONTAINER_METADATA_URI_V4/task, Containers[].Networks[].IPv4Addresses[0]); the EC2 instance metadata service gives the container instance's address, not the task's. Or answer the health check path before host validation.".into(),
            NetworkMode::HostPort => "Add the container instance's private IP to the allowed hosts at start-up (Django: append it to ALLOWED_HOSTS): with bridge or host networking the load balancer sends Host: <instance-ip>:<host-port>. Read it from the EC2 instance metadata service with an IMDSv2 token (from a bridge-mode container the token's response needs a hop limit of 2), or pass it in from the container instance. Or answer the health check path before host validation.".into(),
        };
    }
    d
}
