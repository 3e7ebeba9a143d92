//! Admission: before any probe, tag or completion, Auto Scaling is asked whether it holds
//! the claimed instance for the claimed launch hook. A notification, a hand-over payload
//! or the sweep only *names* a lifecycle action; the facts that decide (the hook and its
//! `NotificationMetadata`, the instance's group and lifecycle state, the token's
//! liveness, where the instance goes) come from AWS's answers here. Does I/O only through
//! the [`crate::aws`] ports.

use tracing::warn;

use crate::aws::{ActionAnswer, Aws, AwsError, HookSettings};
use crate::config::Serving;
use crate::event::{self, LifecycleAction, Location};
use crate::record::Outcome;

/// A lifecycle action Auto Scaling confirmed.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The action, with AWS's facts in place of the claim's: `notification_metadata` as
    /// `DescribeLifecycleHooks` returns it and `destination` from the lifecycle state.
    pub action: LifecycleAction,
    /// The hook's settings.
    pub hook: HookSettings,
}

/// What admission found.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Auto Scaling holds the instance for this hook, and a heartbeat with the token (or
    /// the instance id, without one) was accepted: the action is live.
    Admitted(Box<Admitted>),
    /// Nothing to do: the outcome to record and why. Nothing was probed, tagged or
    /// completed.
    Refused {
        /// [`Outcome::NotHeld`] or [`Outcome::AlreadyDecided`].
        outcome: Outcome,
        /// One sentence, naming what AWS said.
        reason: String,
    },
}

/// Asks Auto Scaling about the claimed action, in this order (each answer can end it):
///
/// 0. With `serving` [`Serving::IfTagged`], `DescribeAutoScalingGroups`: the group carries
///    the serving tag ([`Outcome::NotServed`] if not).
/// 1. `DescribeLifecycleHooks`: the group has a launch hook of that name
///    ([`Outcome::NotHeld`] if not); its `NotificationMetadata` replaces the claim's.
/// 2. `DescribeAutoScalingInstances`: the instance is a member of that group
///    ([`Outcome::NotHeld`] if not) in `Pending:Wait` or `Warmed:Pending:Wait`
///    ([`Outcome::AlreadyDecided`] in any other state). `Warmed:Pending:Wait` sets the
///    destination to the warm pool, and `Pending:Wait` to the group, whatever was claimed.
/// 3. `RecordLifecycleActionHeartbeat` with the token and the instance id: accepted means
///    the action is live (and its heartbeat timer restarts); `No active Lifecycle Action
///    found` is [`Outcome::AlreadyDecided`] (a made-up or stale token, or an action that
///    ended).
///
/// # Errors
/// [`AwsError`] when a call fails after the SDK's retries: nothing is decided on a guess.
pub async fn admit<A: Aws>(
    aws: &A,
    claimed: &LifecycleAction,
    serving: Serving<'_>,
) -> Result<Admission, AwsError> {
    let refuse = |outcome, reason: String| {
        warn!(instance_id = %claimed.instance_id, group = %claimed.group_name, hook = %claimed.hook_name, delivery = ?claimed.delivery, %reason, "refused a claimed lifecycle action");
        Ok(Admission::Refused { outcome, reason })
    };
    if let Serving::IfTagged { key, value } = serving {
        let tagged = aws
            .group_state(&claimed.group_name)
            .await?
            .is_some_and(|g| g.tag(key) == Some(value));
        if !tagged {
            return refuse(
                Outcome::NotServed,
                format!(
                    "the group {} does not carry the tag {key}={value} (LAUNCH_GATE_GROUP_TAG), nor is it named or prefixed: not served; nothing probed, tagged or completed",
                    claimed.group_name
                ),
            );
        }
    }
    let Some(hook) = aws
        .describe_lifecycle_hook(&claimed.group_name, &claimed.hook_name)
        .await?
    else {
        return refuse(
            Outcome::NotHeld,
            format!(
                "the group {} has no lifecycle hook {}: no lifecycle action of it can be pending; nothing probed, tagged or completed",
                claimed.group_name, claimed.hook_name
            ),
        );
    };
    if hook.transition.as_deref() != Some(event::LAUNCHING) {
        return refuse(
            Outcome::NotHeld,
            format!(
                "the lifecycle hook {} of {} is not a launch hook ({}); nothing probed, tagged or completed",
                claimed.hook_name,
                claimed.group_name,
                hook.transition.as_deref().unwrap_or("no transition")
            ),
        );
    }
    let member = match aws.describe_group_member(&claimed.instance_id).await? {
        Some(m) if m.group_name == claimed.group_name => m,
        other => {
            let seen = other.map_or_else(
                || "a member of no Auto Scaling group".to_owned(),
                |m| format!("a member of {}, not {}", m.group_name, claimed.group_name),
            );
            return refuse(
                Outcome::NotHeld,
                format!(
                    "Auto Scaling says the instance {} is {seen}; nothing probed, tagged or completed",
                    claimed.instance_id
                ),
            );
        }
    };
    if !member.is_held_at_launch() {
        return refuse(
            Outcome::AlreadyDecided,
            format!(
                "Auto Scaling says the instance is {}, not held by a launch lifecycle hook: the lifecycle action has ended; nothing probed or completed",
                member.lifecycle_state
            ),
        );
    }
    let mut action = claimed.clone();
    action.notification_metadata = hook.notification_metadata.clone();
    action.destination = Some(if member.is_warm_pool_entry() {
        Location::WarmPool
    } else {
        Location::AutoScalingGroup
    });
    match aws.record_heartbeat(&action).await? {
        ActionAnswer::Accepted => {}
        ActionAnswer::NoActiveAction { message, .. } => {
            return refuse(
                Outcome::AlreadyDecided,
                format!(
                    "Auto Scaling has no live lifecycle action for this {} ({}); nothing probed or completed",
                    if action.token.is_some() {
                        "token and instance"
                    } else {
                        "instance"
                    },
                    crate::text::clip(&message, 200)
                ),
            );
        }
    }
    Ok(Admission::Admitted(Box::new(Admitted { action, hook })))
}
