//! A hand-written fake of every AWS port, for the unit tests of the gate and the breaker
//! (test-only). One instance in `state` with a private IP, launched from `lt-1` version 2,
//! in a group `shop-web` without target groups; its scaling activities show the
//! `abandoned` launches. It records the calls that change something (heartbeats,
//! completions, tags, breaker actions) and the events put.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{
    ActionAnswer, AutoScalingGroups, AwsError, HookSettings, InstanceInfo, Instances,
    LifecycleActionResult, LifecycleActions, TargetGroupSettings, TargetGroups, TargetHealth,
};
use crate::event::{self, LifecycleAction};
use crate::time::epoch_seconds;

/// Auto Scaling and EC2: one instance in `state` with a private IP, launched from
/// `lt-1` version 2, in a group without target groups whose scaling activities show
/// the `abandoned` launches (of the same version); records heartbeats, completions,
/// breaker actions and events.
pub(crate) struct FakeAws {
    pub(crate) calls: Mutex<Vec<String>>,
    pub(crate) decided: Mutex<bool>,
    pub(crate) state: &'static str,
    pub(crate) ip: &'static str,
    pub(crate) abandoned: Vec<&'static str>,
    /// How long ago the `abandoned` launches ended (seconds; 60 by default).
    pub(crate) abandoned_ago: u64,
    pub(crate) group_tags: Mutex<Vec<(String, String)>>,
    /// The group's `HealthCheckGracePeriod`.
    pub(crate) group_grace: Mutex<Option<Duration>>,
    /// The group's members.
    pub(crate) group_instances: Mutex<Vec<crate::aws::GroupInstance>>,
    pub(crate) events: Mutex<Vec<(String, Value)>>,
    pub(crate) events_fail: bool,
    pub(crate) suspend_fails: bool,
    /// `DescribeInstances` of several instances fails (throttled).
    pub(crate) describe_fails: bool,
    /// The hook's `NotificationMetadata`.
    pub(crate) hook_metadata: Option<&'static str>,
    /// The instance's lifecycle state, as `DescribeAutoScalingInstances` says.
    pub(crate) lifecycle_state: &'static str,
}

impl Default for FakeAws {
    fn default() -> Self {
        Self {
            calls: Mutex::default(),
            decided: Mutex::default(),
            state: "running",
            ip: "10.0.1.23",
            abandoned: Vec::new(),
            abandoned_ago: 60,
            group_tags: Mutex::default(),
            group_grace: Mutex::default(),
            group_instances: Mutex::default(),
            events: Mutex::default(),
            events_fail: false,
            suspend_fails: false,
            describe_fails: false,
            hook_metadata: None,
            lifecycle_state: "Pending:Wait",
        }
    }
}

impl FakeAws {
    pub(crate) fn called(&self, operation: &str) {
        self.calls.lock().unwrap().push(operation.to_owned());
    }
}

fn release() -> Option<crate::aws::LaunchTemplateVersion> {
    Some(crate::aws::LaunchTemplateVersion {
        id: "lt-1".into(),
        version: "2".into(),
    })
}

fn info(state: &str, ip: &str) -> InstanceInfo {
    InstanceInfo {
        state: state.into(),
        private_ip: Some(ip.parse().unwrap()),
        group_name: Some("shop-web".into()),
        claimed_until: None,
        launch_template: release(),
        decision: None,
        launched_at: None,
    }
}

impl crate::aws::Events for FakeAws {
    async fn put_event(
        &self,
        _: &str,
        _: &str,
        detail_type: &str,
        detail: &Value,
    ) -> Result<(), AwsError> {
        if self.events_fail {
            return Err(AwsError::local("PutEvents", "InternalFailure"));
        }
        self.events
            .lock()
            .unwrap()
            .push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}

impl LifecycleActions for FakeAws {
    async fn describe_lifecycle_hook(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<HookSettings>, AwsError> {
        Ok(Some(HookSettings {
            heartbeat_timeout: Duration::from_secs(60),
            global_timeout: Duration::from_secs(6000),
            default_result: "ABANDON".into(),
            transition: Some(event::LAUNCHING.into()),
            notification_metadata: self.hook_metadata.map(str::to_owned),
        }))
    }
    async fn record_heartbeat(&self, _: &LifecycleAction) -> Result<ActionAnswer, AwsError> {
        self.calls.lock().unwrap().push("heartbeat".into());
        Ok(ActionAnswer::Accepted)
    }
    async fn complete(
        &self,
        _: &LifecycleAction,
        r: LifecycleActionResult,
    ) -> Result<ActionAnswer, AwsError> {
        self.calls.lock().unwrap().push(r.as_str().into());
        let mut decided = self.decided.lock().unwrap();
        if *decided {
            return Ok(ActionAnswer::NoActiveAction {
                message: "No active Lifecycle Action found".into(),
                retried: false,
            });
        }
        *decided = true;
        Ok(ActionAnswer::Accepted)
    }
}

impl AutoScalingGroups for FakeAws {
    async fn group_names(&self, _: Option<(&str, &str)>) -> Result<Vec<String>, AwsError> {
        Ok(vec!["shop-web".into()])
    }
    async fn describe_group_member(
        &self,
        _: &str,
    ) -> Result<Option<crate::aws::GroupMember>, AwsError> {
        Ok(Some(crate::aws::GroupMember {
            group_name: "shop-web".into(),
            lifecycle_state: self.lifecycle_state.into(),
        }))
    }
    async fn pending_instances(&self, _: &str) -> Result<Vec<String>, AwsError> {
        Ok(Vec::new())
    }
    async fn target_group_arns(&self, _: &str) -> Result<Option<Vec<String>>, AwsError> {
        Ok(Some(Vec::new()))
    }
    async fn group_state(&self, _: &str) -> Result<Option<crate::aws::GroupState>, AwsError> {
        Ok(Some(crate::aws::GroupState {
            suspended_processes: Vec::new(),
            tags: self.group_tags.lock().unwrap().clone(),
            health_check_grace_period: *self.group_grace.lock().unwrap(),
            instances: self.group_instances.lock().unwrap().clone(),
        }))
    }
    async fn scaling_activities(
        &self,
        _: &str,
        _: u64,
    ) -> Result<Vec<crate::aws::ScalingActivity>, AwsError> {
        let now = epoch_seconds();
        Ok(self
            .abandoned
            .iter()
            .map(|id| crate::aws::ScalingActivity {
                id: format!("activity-{id}"),
                description: format!("Launching a new EC2 instance: {id}.  Status Reason: Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result"),
                status_code: "Cancelled".into(),
                status_message: Some("Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result".into()),
                start_time: now - 60 - self.abandoned_ago,
                end_time: Some(now - self.abandoned_ago),
            })
            .collect())
    }
    async fn tag_group(&self, _: &str, key: &str, value: &str) -> Result<(), AwsError> {
        let mut tags = self.group_tags.lock().unwrap();
        tags.retain(|(k, _)| k != key);
        tags.push((key.to_owned(), value.to_owned()));
        Ok(())
    }
    async fn suspend_launch(&self, _: &str) -> Result<(), AwsError> {
        self.called("SuspendProcesses");
        if self.suspend_fails {
            return Err(AwsError::local("SuspendProcesses", "AccessDenied"));
        }
        Ok(())
    }
    async fn rollback_instance_refresh(
        &self,
        _: &str,
    ) -> Result<crate::aws::RefreshAnswer, AwsError> {
        self.called("RollbackInstanceRefresh");
        Ok(crate::aws::RefreshAnswer::Irreversible(
            "no desired configuration".into(),
        ))
    }
    async fn cancel_instance_refresh(
        &self,
        _: &str,
    ) -> Result<crate::aws::RefreshAnswer, AwsError> {
        self.called("CancelInstanceRefresh");
        Ok(crate::aws::RefreshAnswer::Accepted("refresh-1".into()))
    }
}

impl TargetGroups for FakeAws {
    async fn describe_target_groups(
        &self,
        _: &[String],
    ) -> Result<Vec<TargetGroupSettings>, AwsError> {
        Ok(Vec::new())
    }
    async fn register_target(&self, _: &str, _: &str, _: u16) -> Result<(), AwsError> {
        unreachable!("no validation target group in these tests")
    }
    async fn deregister_target(&self, _: &str, _: &str, _: u16) -> Result<(), AwsError> {
        unreachable!("no validation target group in these tests")
    }
    async fn describe_target_health(
        &self,
        _: &str,
        _: &str,
        _: u16,
    ) -> Result<TargetHealth, AwsError> {
        unreachable!("no validation target group in these tests")
    }
}

impl crate::aws::Continuations for FakeAws {
    async fn continue_in_new_invocation(&self, _: &Value) -> Result<(), AwsError> {
        Err(AwsError::local("Invoke", "no function in these tests"))
    }
}

impl Instances for FakeAws {
    async fn claim(&self, _: &str, _: u64) -> Result<(), AwsError> {
        Ok(())
    }
    async fn describe_instance(&self, _: &str) -> Result<Option<InstanceInfo>, AwsError> {
        Ok(Some(info(self.state, self.ip)))
    }
    async fn tag_decision(&self, _: &str, decision: &str) -> Result<(), AwsError> {
        self.calls.lock().unwrap().push(format!("tag {decision}"));
        Ok(())
    }
    async fn describe_instances(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, InstanceInfo)>, AwsError> {
        if self.describe_fails {
            return Err(AwsError::local(
                "DescribeInstances",
                "Throttling: Rate exceeded",
            ));
        }
        // The group's members run on 10.0.1.50, .51, ...; other instances are gone.
        let members = self.group_instances.lock().unwrap();
        Ok(ids
            .iter()
            .map(
                |id| match members.iter().position(|m| &m.instance_id == id) {
                    Some(n) => (id.clone(), info("running", &format!("10.0.1.{}", 50 + n))),
                    None => (id.clone(), info("terminated", "10.0.1.9")),
                },
            )
            .collect())
    }
}
