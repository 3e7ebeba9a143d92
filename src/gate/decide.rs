//! One lifecycle action from admission to completion, stage by stage: admit, settings,
//! claim, resolve, target groups, wait, complete (or hand over).

use super::*;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Admits the action (Auto Scaling confirms it), then resolves, probes and decides.
    /// `start` is when this gate started; for a hand-over it is moved back to the first
    /// invocation's start, bounded by the instance's launch time.
    pub(super) async fn run(
        &self,
        claimed: &LifecycleAction,
        resume: Option<&Continuation>,
        deadline: Option<Instant>,
        start: &mut Instant,
        record: &mut DecisionRecord,
    ) -> Result<(), GateError> {
        let serving = self.config.serving(&claimed.group_name);
        let admitted = match admission::admit(&self.aws, claimed, serving).await? {
            Admission::Admitted(a) => a,
            Admission::Refused { outcome, reason } => {
                record.outcome = outcome;
                record.reason = reason;
                return Ok(());
            }
        };
        record.heartbeats += 1;
        let Admitted { action, hook } = *admitted;
        let action = &action;
        record.destination = action.destination;
        record.hook = Some(hook.clone());
        let config = match self
            .config
            .with_metadata(action.notification_metadata.as_deref())
        {
            Ok(c) => c,
            Err(e) => {
                record.hand_off(format_args!("the hook's settings are rejected: {e}"));
                return Ok(());
            }
        };
        // `auto`: no shorter than the group's own grace period, so an instance the group
        // would still let boot is not abandoned early.
        let config = if config.grace_period_auto {
            let group = self.aws.group_state(&action.group_name).await?;
            config.with_group_grace(group.and_then(|g| g.health_check_grace_period))
        } else {
            config
        };
        record.mode = Some(config.mode);
        record.settings = Some(config.clone());
        let hold = LifecycleActionHold {
            aws: &self.aws,
            action,
            hook: &hook,
        };
        hold::claim(&self.aws, action, &hook).await;

        if action.is_warm_pool_entry() && config.warm_pool_launch == WarmPoolLaunch::Continue {
            let reason = "a launch into the warm pool (Auto Scaling says Warmed:Pending:Wait): the instance is stopped right after, so it is gated when it leaves the pool".to_owned();
            return self
                .complete(
                    action,
                    record,
                    LifecycleActionResult::Continue,
                    LifecycleActionResult::Continue,
                    reason,
                )
                .await;
        }

        let mut clock = Clock::new(*start, deadline, &config, &hook);
        let Some(instance) = self.resolve(&hold, record, &mut clock).await? else {
            return Ok(());
        };
        // The wait is bounded by AWS's facts: the action started when the instance
        // launched, and a hand-over's start is no earlier than that, nor later than now.
        let launched = instance
            .launched_at
            .map(|s| instant_of(s.saturating_mul(1000)));
        clock.bound(launched, resume.map(|c| c.started_at_ms), &config, &hook);
        *start = clock.start;
        let Some(ip) = instance.private_ip else {
            return Ok(());
        };
        let deep = ProbeRequest::deep_health(&config, ip);
        record.private_ip = Some(ip.to_string());
        record.target = Some(deep.url());
        record.host_header = Some(deep.host.clone());

        let Some(targets) = self.target_groups(action, &config, ip, record).await? else {
            return Ok(());
        };
        let mut checks = vec![Check {
            label: CheckLabel::DeepHealth,
            request: deep,
        }];
        checks.extend(targets.checks);

        let policy = HealthPolicy {
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            grace_period: config.grace_period,
            deadline: clock.wait_deadline.saturating_duration_since(clock.start),
        };
        if targets.validation.is_some() {
            clock.reserve(VALIDATION_RESERVE);
        }
        let wait = Wait {
            config: &config,
            policy,
            checks: &checks,
            validation: targets.validation.as_ref(),
            baseline: config.baseline.then(|| baseline::BaselineSource {
                group_name: action.group_name.clone(),
                instance_id: action.instance_id.clone(),
                version: instance.launch_template.as_ref().map(|t| t.version.clone()),
            }),
        };

        // The instance is registered in the validation target group for the wait only:
        // whatever happens next, it is deregistered before the action is completed.
        if let Some(v) = &targets.validation {
            match self
                .aws
                .register_target(&v.settings.arn, &action.instance_id, v.port)
                .await
            {
                Ok(()) => {}
                // Nothing was registered: a configuration error, not an outage to retry.
                Err(e) if e.is_access_denied() => {
                    record.hand_off(format_args!(
                        "configuration error: the function's role may not register targets in the validation target group {} ({}). Fix: name it in the template's ValidationTargetGroupArn (the role's RegisterTargets and DeregisterTargets are scoped to it), or remove validation_target_group_arn from the hook's metadata",
                        v.settings.name,
                        e.code.as_deref().unwrap_or("AccessDenied")
                    ));
                    error!(instance_id = %action.instance_id, reason = %record.reason, "validation target group out of the role's reach");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(r) = record.validation.as_mut() {
                r.registered = true;
            }
        }
        let waited = self.wait(&wait, &hold, record, &mut clock).await;
        if let Some(v) = &targets.validation {
            let deregistered = self
                .aws
                .deregister_target(&v.settings.arn, &action.instance_id, v.port)
                .await;
            if let Some(r) = record.validation.as_mut() {
                r.deregistered = deregistered.is_ok();
            }
            if let Err(e) = deregistered {
                error!(instance_id = %action.instance_id, error = %e, "could not deregister the instance from the validation target group");
                if waited.is_ok() {
                    return Err(e.into());
                }
            }
        }
        let (verdict, reason) = match waited? {
            WaitEnd::Verdict(verdict, reason) => (verdict, reason),
            WaitEnd::Stopped => return Ok(()),
            WaitEnd::ConfigurationError(why) => {
                record.hand_off(why);
                return Ok(());
            }
            WaitEnd::InvocationEnding => {
                return self.hand_over(action, record, &clock, &hook).await;
            }
        };
        let sent = match config.mode {
            Mode::Enforce => verdict,
            Mode::Shadow => LifecycleActionResult::Continue,
        };
        self.complete(action, record, verdict, sent, reason).await
    }
}
