//! `launch-gate doctor`: the setup mistakes that bypass or break the gate, found before a
//! rollout finds them. [`examine`] is pure: it judges a [`Setup`], everything the doctor
//! read of AWS with read-only calls, and gives one [`Finding`] a check, each with what was
//! seen, why it matters and the fix.

use serde::Serialize;
use serde_json::Value;

use crate::aws::{HookSettings, InstanceInfo, RefreshView};
use crate::config::{GateConfig, Mode, Serving};

mod network;
#[cfg(test)]
mod tests;

pub use network::{NetworkView, SgRule, cidr_contains, network_finding};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// As it should be.
    Pass,
    /// Works, with a risk worth knowing.
    Warn,
    /// Bypasses or breaks the gate.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check, for example `hook.default_result`.
    pub check: &'static str,
    /// Its result.
    pub status: Status,
    /// What was seen.
    pub seen: String,
    /// Why it matters (empty for a pass).
    pub why: String,
    /// What to do: a command or a template snippet (empty for a pass).
    pub fix: String,
}

/// A lifecycle hook of the group, from `DescribeLifecycleHooks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookView {
    /// `LifecycleHookName`.
    pub name: String,
    /// Its timeouts, result and transition.
    pub settings: HookSettings,
    /// `NotificationTargetARN`: an SNS topic or an SQS queue the hook notifies.
    pub notification_target: Option<String>,
}

/// The gate's function, from `GetFunctionConfiguration` and `GetPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionView {
    /// `FunctionArn`.
    pub arn: String,
    /// `Environment.Variables`.
    pub variables: Vec<(String, String)>,
    /// Its resource-based policy (`GetPolicy`), when it has one.
    pub policy: Option<String>,
    /// Its event source mappings (`ListEventSourceMappings`): the source's ARN and state.
    pub event_sources: Vec<(String, String)>,
    /// Its execution role's simulated permissions for the calls the gate makes
    /// (`SimulatePrincipalPolicy`): action, resource, decision. `None` when not simulated.
    pub permissions: Option<Vec<(String, String, String)>>,
}

/// An EventBridge rule that targets the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// `Name`.
    pub name: String,
    /// `Arn`.
    pub arn: String,
    /// `State`: `ENABLED`, `DISABLED`, ...
    pub state: String,
    /// Whether its `EventPattern` matches this group's launch lifecycle event of the served
    /// hook (`TestEventPattern`).
    pub matches: bool,
}

/// What the doctor read of AWS.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The group's name.
    pub group: String,
    /// Its lifecycle hooks.
    pub hooks: Vec<HookView>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// `SuspendedProcesses`.
    pub suspended: Vec<String>,
    /// The group's `launch-gate:breaker` tag.
    pub breaker_tag: Option<String>,
    /// Whether it has a warm pool.
    pub warm_pool: bool,
    /// The launch template version the group names (`$Latest`, `$Default` or a number).
    pub template_version: Option<String>,
    /// The newest instance refresh, and whether its preferences roll back automatically.
    pub refresh: Option<(RefreshView, Option<bool>)>,
    /// The group's `InService` instances.
    pub in_service: Vec<String>,
    /// The group's instances as EC2 shows them (with the gate's decision tag).
    pub instances: Vec<(String, InstanceInfo)>,
    /// The function, with `--function`.
    pub function: Option<FunctionView>,
    /// The rules that target the function.
    pub rules: Vec<RuleView>,
    /// The network path from the function (in its VPC) to one in-service instance; the
    /// ports are filled in from the gate's settings.
    pub network: Option<NetworkView>,
    /// The health check port of each of the group's target groups.
    pub target_group_ports: Vec<u16>,
}

/// The gate's settings for this group: the function's variables (or the defaults without
/// `--function`), then the served hook's metadata. `Err` when either is rejected.
fn settings(setup: &Setup) -> Result<GateConfig, String> {
    let base = match &setup.function {
        Some(f) => GateConfig::from_lookup(|k| {
            f.variables
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())?,
        None => GateConfig::default(),
    };
    Ok(base)
}

/// The settings the gate would use for this group's launches: the function's variables
/// (the defaults without `--function`), then the served hook's `NotificationMetadata`;
/// the defaults where either is rejected (the findings say so).
pub fn gate_settings(setup: &Setup) -> GateConfig {
    let base = settings(setup).unwrap_or_default();
    setup
        .hooks
        .iter()
        .find(|h| {
            h.settings.transition.as_deref() == Some(crate::event::LAUNCHING)
                && base.hook_names.contains(&h.name)
        })
        .and_then(|h| {
            base.with_metadata(h.settings.notification_metadata.as_deref())
                .ok()
        })
        .unwrap_or(base)
}

fn finding(check: &'static str, status: Status, seen: String, why: &str, fix: String) -> Finding {
    Finding {
        check,
        status,
        seen,
        why: if status == Status::Pass {
            String::new()
        } else {
            why.to_owned()
        },
        fix: if status == Status::Pass {
            String::new()
        } else {
            fix
        },
    }
}

/// Judges the setup: one finding a check, in the order a reader fixes them.
pub fn examine(setup: &Setup) -> Vec<Finding> {
    let mut out = Vec::new();
    let group = setup.group.as_str();
    let base = settings(setup);
    if let (Some(_), Err(e)) = (&setup.function, &base) {
        out.push(finding(
            "function.settings",
            Status::Fail,
            format!("the function's LAUNCH_GATE_* variables are rejected: {e}"),
            "the function fails at every cold start: no launch is gated, each is left to the hook's DefaultResult at its heartbeat timeout",
            "correct the variable the error names (docs/settings.md gives each one's range)".into(),
        ));
    }
    let config = base.unwrap_or_default();
    if setup.function.is_some() {
        out.push(serving(&config, setup));
    }

    // The hook.
    let served: Vec<&HookView> = setup
        .hooks
        .iter()
        .filter(|h| {
            h.settings.transition.as_deref() == Some(crate::event::LAUNCHING)
                && config.hook_names.iter().any(|n| n == &h.name)
        })
        .collect();
    let put_hook = format!(
        "aws autoscaling put-lifecycle-hook --auto-scaling-group-name {group} --lifecycle-hook-name {} --lifecycle-transition autoscaling:EC2_INSTANCE_LAUNCHING --default-result {} --heartbeat-timeout 900",
        config.hook_names[0],
        match config.mode {
            Mode::Shadow => "CONTINUE",
            Mode::Enforce => "ABANDON",
        }
    );
    let Some(hook) = served.first() else {
        out.push(finding(
            "hook.exists",
            Status::Fail,
            format!(
                "the group {group} has no launch lifecycle hook named {}",
                config.hook_names.join(" or ")
            ),
            "nothing holds a new instance: it goes in service without being checked",
            put_hook,
        ));
        out.extend(the_rest(setup, &config));
        return out;
    };
    out.push(finding(
        "hook.exists",
        Status::Pass,
        format!("launch lifecycle hook {}", hook.name),
        "",
        String::new(),
    ));
    let h = &hook.settings;
    // The hook's DefaultResult applies when the gate cannot answer: it must follow the
    // mode, as the template's does.
    let mode = config
        .with_metadata(h.notification_metadata.as_deref())
        .map_or(config.mode, |c| c.mode);
    let (status, risk, wanted) = match (mode, h.default_result.as_str()) {
        (Mode::Enforce, "ABANDON") | (Mode::Shadow, "CONTINUE") => (Status::Pass, "", ""),
        (Mode::Shadow, _) => (
            Status::Warn,
            "shadow mode, yet every instance the gate cannot answer for (network path, throttling, AccessDenied) is terminated at the heartbeat timeout",
            "CONTINUE",
        ),
        (Mode::Enforce, _) => (
            Status::Fail,
            "an instance the gate never decided (the gate failed, the event was lost) goes in service unchecked",
            "ABANDON",
        ),
    };
    out.push(finding(
        "hook.default_result",
        status,
        format!("DefaultResult {} in {} mode", h.default_result, mode.as_str()),
        risk,
        if wanted.is_empty() {
            String::new()
        } else {
            format!(
                "aws autoscaling put-lifecycle-hook --auto-scaling-group-name {group} --lifecycle-hook-name {} --lifecycle-transition autoscaling:EC2_INSTANCE_LAUNCHING --default-result {wanted}",
                hook.name
            )
        },
    ));
    // A heartbeat every half timeout, with a round and the completion's reserve between.
    let round = config.interval + config.probe_timeout;
    let needed = round * 2 + crate::gate::INVOCATION_RESERVE;
    out.push(finding(
        "hook.heartbeat_timeout",
        if h.heartbeat_timeout >= needed { Status::Pass } else { Status::Fail },
        format!(
            "HeartbeatTimeout {} s; the gate's interval {} s and probe timeout {} s need at least {} s",
            h.heartbeat_timeout.as_secs(),
            config.interval.as_secs(),
            config.probe_timeout.as_secs(),
            needed.as_secs()
        ),
        "the gate records a heartbeat every half timeout, between rounds: a shorter timeout ends the action with its DefaultResult while the gate still waits",
        format!(
            "aws autoscaling put-lifecycle-hook --auto-scaling-group-name {group} --lifecycle-hook-name {} --heartbeat-timeout {}",
            hook.name,
            needed.as_secs().max(300)
        ),
    ));
    out.push(finding(
        "hook.global_timeout",
        if h.global_timeout > config.max_wait {
            Status::Pass
        } else {
            Status::Fail
        },
        format!(
            "global timeout {} s (100 x HeartbeatTimeout, at most 48 h); max_wait_seconds {} s",
            h.global_timeout.as_secs(),
            config.max_wait.as_secs()
        ),
        "Auto Scaling ends the action at its global timeout, before the gate's wait ends",
        "lower max_wait_seconds, or raise the hook's HeartbeatTimeout".into(),
    ));
    let metadata = config.with_metadata(h.notification_metadata.as_deref());
    out.push(finding(
        "hook.metadata",
        if metadata.is_ok() { Status::Pass } else { Status::Fail },
        match &metadata {
            Ok(_) => "NotificationMetadata accepted".into(),
            Err(e) => format!("NotificationMetadata rejected: {e}"),
        },
        "the gate hands every launch of the group to the hook's DefaultResult at the heartbeat timeout: each is abandoned, silently, until it is fixed",
        "correct the key the error names (docs/settings.md)".into(),
    ));
    let config = metadata.unwrap_or(config);
    let others: Vec<&str> = setup
        .hooks
        .iter()
        .filter(|o| {
            o.settings.transition.as_deref() == Some(crate::event::LAUNCHING) && o.name != hook.name
        })
        .map(|o| o.name.as_str())
        .collect();
    out.push(finding(
        "hook.others",
        if others.is_empty() { Status::Pass } else { Status::Warn },
        if others.is_empty() {
            "no other launch lifecycle hook".into()
        } else {
            format!("other launch lifecycle hooks: {}", others.join(", "))
        },
        "every launch hook must complete before the instance goes in service; the gate never completes another (a CodeDeploy hook may deploy after the gate checked, or time out on its own)",
        "make sure each other hook's owner completes it, and that the gate checks what the app will run (a CodeDeploy deployment should finish before the gate's wait ends)".into(),
    ));
    out.extend(the_rest(setup, &config));
    out
}

/// Whether the function serves the group, as its settings say.
fn serving(config: &GateConfig, setup: &Setup) -> Finding {
    let served = match config.serving(&setup.group) {
        Serving::Yes => true,
        Serving::IfTagged { key, value } => setup.tags.iter().any(|(k, v)| k == key && v == value),
        Serving::No => false,
    };
    finding(
        "function.serves_group",
        if served { Status::Pass } else { Status::Fail },
        format!(
            "the function serves {}: {}",
            setup.group,
            if served { "yes" } else { "no" }
        ),
        "the gate acknowledges this group's events and ignores them (not_served): every launch waits for the hook's DefaultResult",
        "add the group to GroupNames, or serve it by GroupNamePrefix or the launch-gate tag (docs/deploy.md)".into(),
    )
}

/// The checks after the hook's: instances, the notification path, suspended processes,
/// rollbacks, the warm pool.
fn the_rest(setup: &Setup, config: &GateConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let group = setup.group.as_str();
    let never: Vec<&str> = setup
        .instances
        .iter()
        .filter(|(id, info)| setup.in_service.contains(id) && info.decision.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    out.push(finding(
        "instances.gated",
        if never.is_empty() { Status::Pass } else { Status::Warn },
        if never.is_empty() {
            format!("{} instances in service, each with the gate's decision", setup.in_service.len())
        } else {
            format!(
                "{} of {} instances in service never passed the gate (no launch-gate:decision tag): {}",
                never.len(),
                setup.in_service.len(),
                never.join(", ")
            )
        },
        "they launched before the hook existed (or while the gate did not serve the group), so nobody checked them",
        format!("aws autoscaling start-instance-refresh --auto-scaling-group-name {group}  # replaces them, each through the gate"),
    ));
    match &setup.function {
        None => out.push(finding(
            "path.rule",
            Status::Warn,
            "not checked: give --function".into(),
            "without the function, the doctor cannot see whether events reach it",
            "launch-gate doctor --group NAME --function NAME".into(),
        )),
        Some(f) => {
            let matching: Vec<&RuleView> = setup
                .rules
                .iter()
                .filter(|r| r.matches && r.state == "ENABLED")
                .collect();
            // Or the hook's own notification target, wired to the function.
            let notified = setup
                .hooks
                .iter()
                .filter(|h| config.hook_names.contains(&h.name))
                .filter_map(|h| h.notification_target.as_deref())
                .find(|target| {
                    (target.contains(":sqs:")
                        && f.event_sources
                            .iter()
                            .any(|(arn, state)| arn == target && state == "Enabled"))
                        || (target.contains(":sns:")
                            && policy_allows(f.policy.as_deref(), "sns.amazonaws.com", target))
                });
            if let Some(target) = notified {
                out.push(finding(
                    "path.rule",
                    Status::Pass,
                    format!("the hook notifies {target}, which invokes the function"),
                    "",
                    String::new(),
                ));
                out.push(permissions_finding(f));
                return the_rest_after_path(setup, config, out);
            }
            out.push(finding(
                "path.rule",
                if matching.is_empty() { Status::Fail } else { Status::Pass },
                if matching.is_empty() {
                    format!(
                        "{} EventBridge rules target the function; none is enabled and matches this group's launch lifecycle events",
                        setup.rules.len()
                    )
                } else {
                    format!("EventBridge rule {} delivers them", matching[0].name)
                },
                "no event reaches the gate: each launch waits for the sweep (every 5 minutes) or its heartbeat timeout",
                format!(
                    "an enabled rule with the pattern {} and the function as its target",
                    serde_json::json!({"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-launch Lifecycle Action"], "detail": {"AutoScalingGroupName": [group], "LifecycleHookName": config.hook_names}})
                ),
            ));
            let allowed = matching
                .iter()
                .any(|r| policy_allows_events(f.policy.as_deref(), &r.arn));
            out.push(finding(
                "path.permission",
                if matching.is_empty() {
                    Status::Warn
                } else if allowed {
                    Status::Pass
                } else {
                    Status::Fail
                },
                if allowed {
                    "the function's policy lets EventBridge invoke it for that rule".into()
                } else if matching.is_empty() {
                    "not checked: no rule to check it for".into()
                } else {
                    "the function's policy does not let events.amazonaws.com invoke it for that rule".into()
                },
                "EventBridge's invocations are refused, and the events go to the rule's dead-letter queue",
                format!(
                    "aws lambda add-permission --function-name {} --statement-id eventbridge --action lambda:InvokeFunction --principal events.amazonaws.com --source-arn <rule ARN>",
                    f.arn
                ),
            ));
        }
    }
    out.push(permissions_finding_opt(setup));
    the_rest_after_path(setup, config, out)
}

/// The checks after the notification path: the network, processes, rollbacks, warm pool.
fn the_rest_after_path(setup: &Setup, config: &GateConfig, mut out: Vec<Finding>) -> Vec<Finding> {
    let group = setup.group.as_str();
    if setup.function.is_some() {
        out.push(match &setup.network {
            Some(n) => {
                let mut n = n.clone();
                n.ports = std::iter::once(config.health_port)
                    .chain(setup.target_group_ports.iter().copied())
                    .collect();
                n.ports.sort_unstable();
                n.ports.dedup();
                network_finding(&n)
            }
            None => finding(
                "network.reach",
                Status::Warn,
                "not checked: the function has no VPC configuration, or the group no instance in service".into(),
                "a function outside the VPC cannot reach the instances' private IPs",
                "run the function in the app's VPC (the template's SubnetIds), then ask again".into(),
            ),
        });
    }
    let launch = setup.suspended.iter().any(|p| p == "Launch");
    out.push(finding(
        "group.processes",
        if launch {
            Status::Fail
        } else if setup.suspended.is_empty() {
            Status::Pass
        } else {
            Status::Warn
        },
        if setup.suspended.is_empty() {
            "no suspended process".into()
        } else {
            format!(
                "suspended: {}{}",
                setup.suspended.join(", "),
                setup
                    .breaker_tag
                    .as_deref()
                    .map_or_else(String::new, |t| format!(" (launch-gate's breaker: {t})"))
            )
        },
        "a suspended Launch process launches nothing: no scale-out, no replacement, no rollout",
        crate::breaker::resume_command(group),
    ));
    let floating = |v: Option<&str>| matches!(v, None | Some("$Latest") | Some("$Default"));
    let refresh_floating = setup
        .refresh
        .as_ref()
        .and_then(|(r, _)| r.desired.as_ref())
        .is_some_and(|d| floating(d.version.as_deref()));
    let no_auto = setup
        .refresh
        .as_ref()
        .is_some_and(|(_, auto)| *auto != Some(true));
    let group_floating =
        setup.template_version.is_some() && floating(setup.template_version.as_deref());
    out.push(finding(
        "rollout.rollback",
        if refresh_floating || group_floating || no_auto { Status::Warn } else { Status::Pass },
        format!(
            "the group's launch template version {}; newest instance refresh: {}",
            setup.template_version.as_deref().unwrap_or("(none)"),
            match &setup.refresh {
                None => "none".to_owned(),
                Some((r, auto)) => format!(
                    "{} to version {}, AutoRollback {}",
                    r.status,
                    r.desired
                        .as_ref()
                        .and_then(|d| d.version.as_deref())
                        .unwrap_or("(the group's)"),
                    auto.map_or("unset".to_owned(), |a| a.to_string())
                ),
            }
        ),
        "an instance refresh to $Latest or $Default cannot be rolled back (the breaker's rollback then cancels it), and without AutoRollback a failed refresh leaves the replaced instances as they are",
        "name a numbered launch template version, and start refreshes with --preferences '{\"AutoRollback\": true}'".into(),
    ));
    out.push(finding(
        "group.warm_pool",
        Status::Pass,
        if setup.warm_pool {
            format!(
                "a warm pool: the launch hook holds each instance twice, into the pool and out of it; warm_pool_launch={:?} {}",
                config.warm_pool_launch,
                "(continue: an instance entering the pool is continued and gated when it leaves)"
            )
        } else {
            "no warm pool".into()
        },
        "",
        String::new(),
    ));
    out
}

/// Whether the function's resource policy lets `events.amazonaws.com` invoke it for the
/// rule `rule_arn` (a statement without a source condition allows every rule).
pub fn policy_allows_events(policy: Option<&str>, rule_arn: &str) -> bool {
    policy_allows(policy, "events.amazonaws.com", rule_arn)
}

/// Whether the function's resource policy lets the service `principal` invoke it for the
/// source `source_arn` (a statement without a source condition allows every source).
pub fn policy_allows(policy: Option<&str>, principal: &str, source_arn: &str) -> bool {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|s| {
        let service = &s["Principal"]["Service"];
        let events = service == principal
            || service
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == principal));
        let action = &s["Action"];
        let invoke = action == "lambda:InvokeFunction"
            || action == "lambda:*"
            || action
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "lambda:InvokeFunction"));
        let source = s["Condition"]["ArnLike"]["AWS:SourceArn"]
            .as_str()
            .or_else(|| s["Condition"]["ArnEquals"]["AWS:SourceArn"].as_str());
        s["Effect"] == "Allow" && events && invoke && source.is_none_or(|a| a == source_arn)
    })
}

/// The role's simulated permissions, when `--function` was given.
fn permissions_finding_opt(setup: &Setup) -> Finding {
    match &setup.function {
        Some(f) => permissions_finding(f),
        None => finding(
            "function.permissions",
            Status::Warn,
            "not checked: give --function".into(),
            "without the function, the doctor cannot simulate its role",
            "launch-gate doctor --group NAME --function NAME".into(),
        ),
    }
}

/// Whether the function's role may make the calls the gate makes, as IAM's policy
/// simulation says (conditions such as the tag keys are not evaluated).
fn permissions_finding(f: &FunctionView) -> Finding {
    let Some(results) = &f.permissions else {
        return finding(
            "function.permissions",
            Status::Warn,
            "not simulated: IAM's SimulatePrincipalPolicy could not be called (the caller may lack iam:SimulatePrincipalPolicy)".into(),
            "a call the role may not make fails every decision that needs it",
            "allow iam:SimulatePrincipalPolicy to the caller, or compare the role's policy with docs/deploy.md's list".into(),
        );
    };
    let denied: Vec<String> = results
        .iter()
        .filter(|(_, _, decision)| decision != "allowed")
        .map(|(action, resource, decision)| format!("{action} on {resource} ({decision})"))
        .collect();
    finding(
        "function.permissions",
        if denied.is_empty() { Status::Pass } else { Status::Fail },
        if denied.is_empty() {
            format!("the role may make the gate's {} calls", results.len())
        } else {
            format!("the role may not make: {}", denied.join("; "))
        },
        "each decision that needs a call the role may not make fails after AWS refuses it: the launch is left to the hook's DefaultResult",
        "grant those actions on those resources in the role's policy (template.yaml's GateFunction Policies give each, scoped)".into(),
    )
}

/// The exit status: 1 when a check fails, else 0.
pub fn exit_status(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.status == Status::Fail))
}

/// A probe verdict of one in-service instance, as the doctor's last check.
pub fn live_finding(instance_id: &str, failures: &[(String, String, String)]) -> Finding {
    if failures.is_empty() {
        return finding(
            "app.live",
            Status::Pass,
            format!("{instance_id} passes the gate's checks and its target groups' checks"),
            "",
            String::new(),
        );
    }
    let (check, summary, fix) = &failures[0];
    finding(
        "app.live",
        Status::Fail,
        format!("{instance_id} fails {check}: {summary}"),
        "the next release launched like it would be abandoned (or, in service, fails the load balancer's check)",
        fix.clone(),
    )
}
