//! The group's target groups and the validation target group: their health checks, as
//! the load balancer will send them.

use super::*;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Reads the group's target groups and the validation target group, once, and builds
    /// the target groups' health checks. `None` when the gate ends here (a configuration
    /// error, recorded as a hand-off, or a group that no longer exists).
    pub(super) async fn target_groups(
        &self,
        action: &LifecycleAction,
        config: &GateConfig,
        ip: IpAddr,
        record: &mut DecisionRecord,
    ) -> Result<Option<Targets>, GateError> {
        let mut targets = Targets::default();
        let mut arns = Vec::new();
        if config.target_group_checks {
            let Some(group_arns) = self.aws.target_group_arns(&action.group_name).await? else {
                record.outcome = Outcome::AlreadyDecided;
                record.reason = format!("the group {} does not exist any more", action.group_name);
                return Ok(None);
            };
            if group_arns.is_empty() {
                record.target_groups_note = Some(
                    "the group has no target groups: no target-group health check to run".into(),
                );
            }
            let (elb, other): (Vec<String>, Vec<String>) = group_arns
                .into_iter()
                .partition(|a| crate::aws::is_elb_target_group(a));
            if !other.is_empty() {
                record.target_groups_note = Some(format!(
                    "skipped, not Elastic Load Balancing target groups (VPC Lattice): {}",
                    other.join(", ")
                ));
            }
            arns = elb;
        } else {
            record.target_groups_note =
                Some("target-group checks are off (target_group_checks)".into());
        }
        if let Some(v) = &config.validation_target_group_arn {
            arns.retain(|a| a != v);
            arns.push(v.clone());
        }
        let settings = if arns.is_empty() {
            Vec::new()
        } else {
            self.aws.describe_target_groups(&arns).await?
        };
        for tg in settings
            .iter()
            .filter(|tg| Some(&tg.arn) != config.validation_target_group_arn.as_ref())
        {
            let mut tg_record = TargetGroupRecord::new(tg);
            match ProbeRequest::for_target_group(tg, ip, config.body_limit_bytes) {
                Ok(request) => {
                    tg_record.target = Some(request.url());
                    targets.checks.push(Check {
                        label: CheckLabel::TargetGroup(tg.name.clone()),
                        request,
                    });
                }
                Err(why) => tg_record.skipped = Some(why),
            }
            record.target_groups.push(tg_record);
        }
        if let Some(arn) = &config.validation_target_group_arn {
            let handoff = |record: &mut DecisionRecord, why: String| {
                record.hand_off(why);
                error!(instance_id = %action.instance_id, reason = %record.reason, "validation target group misconfigured");
            };
            let Some(tg) = settings.iter().find(|tg| &tg.arn == arn) else {
                handoff(
                    record,
                    format!("the validation target group {arn} does not exist"),
                );
                return Ok(None);
            };
            let port = tg.port.unwrap_or(config.health_port);
            record.validation = Some(ValidationRecord::new(tg, port));
            if tg.load_balancer_arns.is_empty() {
                handoff(
                    record,
                    format!(
                        "configuration error: the validation target group {} is not used by any load balancer listener, so the load balancer never checks its targets (it would report unused / Target.NotInUse). Fix: attach it to a listener rule that no production request matches",
                        tg.name
                    ),
                );
                return Ok(None);
            }
            if !tg.health_check_enabled {
                handoff(
                    record,
                    format!(
                        "configuration error: health checks are disabled on the validation target group {}",
                        tg.name
                    ),
                );
                return Ok(None);
            }
            let request = match ProbeRequest::for_target_group(tg, ip, config.body_limit_bytes) {
                Ok(r) => r,
                Err(why) => {
                    handoff(
                        record,
                        format!("the validation target group {}: {why}", tg.name),
                    );
                    return Ok(None);
                }
            };
            targets.validation = Some(Validation {
                settings: tg.clone(),
                port,
                request,
            });
        }
        Ok(Some(targets))
    }
}

/// One health check the gate runs each round.
#[derive(Debug)]
pub(super) struct Check {
    pub(super) label: CheckLabel,
    pub(super) request: ProbeRequest,
}

/// The target groups' checks and the validation target group of one gate.
#[derive(Debug, Default)]
pub(super) struct Targets {
    pub(super) checks: Vec<Check>,
    pub(super) validation: Option<Validation>,
}

/// The validation target group: where the instance is registered, and its health check
/// as the load balancer sends it (to word causes).
#[derive(Debug)]
pub(super) struct Validation {
    pub(super) settings: TargetGroupSettings,
    pub(super) port: u16,
    pub(super) request: ProbeRequest,
}
