"""Scaling activities and instance refreshes for launch-gate's AWS emulator.

Stock moto (5.2) answers `DescribeScalingActivities` with an empty list, has no instance
refresh at all, launches a group's instances from the launch template's default version
whatever version the group names, and keeps launching while `Launch` is suspended. This
module adds, as far as launch-gate needs and in AWS's shapes:

* scaling activities (docs.aws.amazon.com/autoscaling/ec2/userguide/as-verify-scaling-activity.html):
  one per launch (into the group, or "into warm pool"), `MidLifecycleAction` while a
  launch lifecycle hook holds the instance, `Successful` after `CONTINUE`, and `Cancelled`
  with AWS's status message after an abandon: "Instance failed to complete user's
  Lifecycle Action: Lifecycle Action with token ... was abandoned: Lifecycle Action
  Completed with ABANDON Result" when `CompleteLifecycleAction` said `ABANDON`, "... was
  abandoned: Heartbeat Timeout" when the hook's `DefaultResult` `ABANDON` applied at the
  heartbeat timeout (AWS knowledge center, "lifecycle-actions-code-deploy"); one per
  termination by an instance refresh. `DescribeScalingActivities` lists them newest
  first, `MaxRecords` (at most 100) at a time with `NextToken`;
* launches from the launch template version the group names (`$Default`, `$Latest` or a
  number), or the desired configuration's while an instance refresh is in progress;
* `Launch` suspended (`SuspendProcesses`): the group launches nothing;
* instance refreshes: `StartInstanceRefresh` (with or without `DesiredConfiguration`),
  `DescribeInstanceRefreshes`, `CancelInstanceRefresh` and `RollbackInstanceRefresh`,
  with AWS's errors `InstanceRefreshInProgress`, `ActiveInstanceRefreshNotFound` and
  `IrreversibleInstanceRefresh` (no desired configuration, or the group names `$Latest`
  or `$Default`). A refresh replaces one instance at a time: it terminates an instance
  that does not run the target version, waits for the replacement to be `InService`, and
  so on. On success the group takes the desired configuration; a rollback replaces the
  instances launched so far with the group's own (previous) version.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from typing import Any

from moto.autoscaling import responses as asg_responses
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.core.responses import ActionResult

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress")
ABANDONED_MESSAGE = (
    "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token {token} "
    "was abandoned: {reason}"
)
# Why an action was abandoned, by what ended it (the emulator's `EndedBy`). AWS documents
# the first two; its wording for the global timeout is not documented, and the heartbeat
# timeout's is the closest.
ABANDON_REASONS = {
    "CompleteLifecycleAction": "Lifecycle Action Completed with ABANDON Result",
    "HeartbeatTimeout": "Heartbeat Timeout",
    "GlobalTimeout": "Heartbeat Timeout",
}


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class IrreversibleInstanceRefresh(AutoscalingClientError):
    code = "IrreversibleInstanceRefresh"


class InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


def _time(ts: float | None) -> datetime.datetime | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- scaling activities --------------------------------------------------------------------


def _activities(backend: Any) -> list[dict[str, Any]]:
    if not hasattr(backend, "scaling_activities"):
        backend.scaling_activities = []
    return backend.scaling_activities


def _record(group: Any, instance_id: str, description: str, cause: str, held: bool, details: str) -> None:
    now = time.time()
    _activities(group.autoscaling_backend).append(
        {
            "ActivityId": str(uuid.uuid4()),
            "AutoScalingGroupName": group.name,
            "AutoScalingGroupARN": group.arn,
            "Description": description,
            "Cause": f"At {_iso(now)} {cause}",
            "StartTime": now,
            "EndTime": None if held else now,
            "StatusCode": "MidLifecycleAction" if held else "Successful",
            "Progress": 50 if held else 100,
            "Details": details,
            "InstanceId": instance_id,
        }
    )


def _placement(instance: Any) -> str:
    return json.dumps(
        {
            "Subnet ID": getattr(instance, "subnet_id", None),
            "Availability Zone": getattr(instance.placement, "zone", None),
        }
    )


def record_launch(group: Any, instance: Any, held: bool, capacity_from: int) -> None:
    """A launch activity for `instance`, held by a launch lifecycle hook or not."""
    _record(
        group,
        instance.id,
        f"Launching a new EC2 instance: {instance.id}",
        "an instance was started in response to a difference between desired and actual "
        f"capacity, increasing the capacity from {capacity_from} to {capacity_from + 1}.",
        held,
        _placement(instance),
    )


def record_warm_pool_launch(group: Any, instance: Any, held: bool) -> None:
    """A launch activity for `instance`, launched into the group's warm pool."""
    # AWS's description; its cause for a warm pool launch is not documented.
    _record(
        group,
        instance.id,
        f"Launching a new EC2 instance into warm pool: {instance.id}",
        "an instance was launched into the warm pool.",
        held,
        _placement(instance),
    )


def record_lifecycle_end(
    backend: Any, instance_id: str, result: str, token: str, ended_by: str = "CompleteLifecycleAction"
) -> None:
    """Ends the launch activity of `instance_id` as its lifecycle action ended, `ended_by`
    CompleteLifecycleAction, HeartbeatTimeout or GlobalTimeout."""
    for activity in reversed(_activities(backend)):
        if activity.get("InstanceId") != instance_id or activity["EndTime"] is not None:
            continue
        activity["EndTime"], activity["Progress"] = time.time(), 100
        if result == "ABANDON":
            reason = ABANDON_REASONS.get(ended_by, ABANDON_REASONS["CompleteLifecycleAction"])
            message = ABANDONED_MESSAGE.format(token=token, reason=reason)
            activity["StatusCode"], activity["StatusMessage"] = "Cancelled", message
            activity["Description"] += f".  Status Reason: {message}"
        else:
            activity["StatusCode"] = "Successful"
        return


def replace(group: Any, state: Any) -> None:
    """Takes an instance out of the group and terminates it; the group launches a
    replacement to keep its desired capacity."""
    group.instance_states = [s for s in group.instance_states if s is not state]
    group.autoscaling_backend.ec2_backend.terminate_instances([state.instance.id])
    group.set_desired_capacity(group.desired_capacity)


def record_termination(group: Any, instance_id: str, cause: str) -> None:
    _record(group, instance_id, f"Terminating EC2 instance: {instance_id}", cause, False, "{}")


def describe_scaling_activities(self: Any) -> ActionResult:
    group_name = self._get_param("AutoScalingGroupName")
    ids = self._get_param("ActivityIds", []) or []
    max_records = min(int(self._get_param("MaxRecords") or 100), 100)
    start = int(self._get_param("NextToken") or 0)
    listed = [
        a
        for a in reversed(_activities(self.autoscaling_backend))
        if (not group_name or a["AutoScalingGroupName"] == group_name)
        and (not ids or a["ActivityId"] in ids)
    ]
    page = listed[start : start + max_records]
    result: dict[str, Any] = {
        "Activities": [
            {
                **{k: v for k, v in a.items() if k not in ("InstanceId", "StartTime", "EndTime")},
                "StartTime": _time(a["StartTime"]),
                **({"EndTime": _time(a["EndTime"])} if a["EndTime"] is not None else {}),
            }
            for a in page
        ]
    }
    if start + max_records < len(listed):
        result["NextToken"] = str(start + max_records)
    return ActionResult(result)


# --- launches: the version, and Launch suspended -------------------------------------------


def launch_suspended(group: Any) -> bool:
    return any(p.get("ProcessName") == "Launch" for p in group.suspended_processes)


def _resolve(group: Any, version: str | None) -> str | None:
    template = group.ec2_launch_template
    if template is None:
        return None
    return str(template.get_version(version or "$Default").number)


def launch_version(group: Any) -> str | None:
    """The launch template version the group launches now: an instance refresh's desired
    configuration while it is in progress, else the group's own."""
    refresh = active_refresh(group.autoscaling_backend, group.name)
    if refresh is not None and refresh.status in ("Pending", "InProgress") and refresh.desired:
        return refresh.desired["Version"]
    return _resolve(group, group.launch_template_version)


def _version_of(backend: Any, instance_id: str) -> str | None:
    """The `aws:ec2launchtemplate:version` tag EC2 puts on an instance launched from a
    launch template."""
    instance = backend.ec2_backend.get_instance_by_id(instance_id)
    if instance is None:
        return None
    tags = {t["key"]: t["value"] for t in instance.get_tags()}
    return tags.get("aws:ec2launchtemplate:version")


# --- instance refreshes --------------------------------------------------------------------


class InstanceRefresh:
    def __init__(self, group: Any, desired: dict[str, Any] | None, preferences: dict[str, Any]) -> None:
        self.id = str(uuid.uuid4())
        self.group_name = group.name
        self.status = "Pending"
        self.status_reason: str | None = None
        self.start_time = time.time()
        self.end_time: float | None = None
        self.preferences = preferences
        self.previous = group.launch_template_version
        self.desired = desired
        # The version as given (`$Latest`, `$Default` or a number); `desired` holds it resolved.
        self.requested: str | None = None
        self.replaced = 0
        self.rollback_start: float | None = None
        if desired is None:
            self.target = _resolve(group, group.launch_template_version)
        else:
            self.target = desired["Version"]
        self.to_update = sum(1 for s in group.instance_states if _version_of(group.autoscaling_backend, s.instance.id) != self.target)

    def view(self) -> dict[str, Any]:
        total = max(self.to_update, 1)
        view: dict[str, Any] = {
            "InstanceRefreshId": self.id,
            "AutoScalingGroupName": self.group_name,
            "Status": self.status,
            "StartTime": _time(self.start_time),
            "PercentageComplete": min(100, 100 * self.replaced // total),
            "InstancesToUpdate": max(self.to_update - self.replaced, 0),
            "Preferences": self.preferences or {},
        }
        if self.status_reason:
            view["StatusReason"] = self.status_reason
        if self.end_time is not None:
            view["EndTime"] = _time(self.end_time)
        if self.desired:
            view["DesiredConfiguration"] = {"LaunchTemplate": dict(self.desired)}
        if self.rollback_start is not None:
            view["RollbackDetails"] = {
                "RollbackReason": "Rollback started by user request",
                "RollbackStartTime": _time(self.rollback_start),
            }
        return view


def _refreshes(backend: Any) -> list[InstanceRefresh]:
    if not hasattr(backend, "instance_refreshes"):
        backend.instance_refreshes = []
    return backend.instance_refreshes


def active_refresh(backend: Any, group_name: str) -> InstanceRefresh | None:
    return next(
        (r for r in reversed(_refreshes(backend)) if r.group_name == group_name and r.status in ACTIVE),
        None,
    )


def _group(backend: Any, name: str) -> Any:
    group = backend.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
    return group


def start_instance_refresh(self: Any) -> ActionResult:
    backend = self.autoscaling_backend
    group = _group(backend, self._get_param("AutoScalingGroupName"))
    if active_refresh(backend, group.name) is not None:
        raise InstanceRefreshInProgress(
            "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh."
        )
    desired = None
    spec = (self._get_param("DesiredConfiguration") or {}).get("LaunchTemplate")
    if spec:
        template = group.ec2_launch_template
        version = str(spec.get("Version") or "$Default")
        resolved = str(template.get_version(version).number) if template else version
        desired = {
            "LaunchTemplateId": template.id if template else spec.get("LaunchTemplateId"),
            "LaunchTemplateName": template.name if template else spec.get("LaunchTemplateName"),
            "Version": resolved,
        }
    refresh = InstanceRefresh(group, desired, self._get_param("Preferences") or {})
    if spec:
        refresh.requested = version
    _refreshes(backend).append(refresh)
    return ActionResult({"InstanceRefreshId": refresh.id})


def describe_instance_refreshes(self: Any) -> ActionResult:
    backend = self.autoscaling_backend
    name = self._get_param("AutoScalingGroupName")
    ids = self._get_param("InstanceRefreshIds", []) or []
    listed = [
        r.view()
        for r in reversed(_refreshes(backend))
        if r.group_name == name and (not ids or r.id in ids)
    ]
    max_records = min(int(self._get_param("MaxRecords") or 50), 100)
    return ActionResult({"InstanceRefreshes": listed[:max_records]})


def cancel_instance_refresh(self: Any) -> ActionResult:
    backend = self.autoscaling_backend
    group = _group(backend, self._get_param("AutoScalingGroupName"))
    refresh = active_refresh(backend, group.name)
    if refresh is None or refresh.status == "Cancelling":
        raise ActiveInstanceRefreshNotFound(
            f"No in progress or pending Instance Refresh found for Auto Scaling group {group.name}"
        )
    refresh.status = "Cancelling"
    refresh.status_reason = "Cancelled by user request"
    return ActionResult({"InstanceRefreshId": refresh.id})


def rollback_instance_refresh(self: Any) -> ActionResult:
    backend = self.autoscaling_backend
    group = _group(backend, self._get_param("AutoScalingGroupName"))
    refresh = active_refresh(backend, group.name)
    if refresh is None or refresh.status not in ("Pending", "InProgress"):
        raise ActiveInstanceRefreshNotFound(
            f"No in progress or pending Instance Refresh found for Auto Scaling group {group.name}"
        )
    previous = str(refresh.previous or "$Default")
    if refresh.desired is None or not previous.isdigit() or not refresh.requested.isdigit():
        raise IrreversibleInstanceRefresh(
            "The instance refresh cannot be rolled back: it has no desired configuration, or the "
            "group or the desired configuration uses the launch template version $Latest or $Default."
        )
    refresh.status = "RollbackInProgress"
    refresh.rollback_start = time.time()
    refresh.status_reason = "Rollback started by user request"
    refresh.target = previous
    return ActionResult({"InstanceRefreshId": refresh.id})


def tick(backend: Any) -> None:
    """One step of every active instance refresh (the emulator's timer thread calls it
    under its lock)."""
    for refresh in list(_refreshes(backend)):
        if refresh.status not in ACTIVE:
            continue
        group = backend.autoscaling_groups.get(refresh.group_name)
        if group is None:
            refresh.status, refresh.end_time = "Failed", time.time()
            continue
        if refresh.status == "Cancelling":
            refresh.status, refresh.end_time = "Cancelled", time.time()
            continue
        if refresh.status == "Pending":
            refresh.status = "InProgress"
        if launch_suspended(group):
            continue
        if any(s.lifecycle_state.startswith("Pending") for s in group.instance_states):
            continue  # a replacement is still on its way in service
        outdated = [
            s
            for s in group.instance_states
            if s.lifecycle_state == "InService" and _version_of(backend, s.instance.id) != refresh.target
        ]
        if not outdated:
            refresh.end_time = time.time()
            if refresh.status == "RollbackInProgress":
                refresh.status = "RollbackSuccessful"
            else:
                refresh.status = "Successful"
                if refresh.desired:
                    group.launch_template_version = refresh.requested
            continue
        state = outdated[0]
        record_termination(group, state.instance.id, "an instance was taken out of service in response to an instance refresh.")
        refresh.replaced += 1
        replace(group, state)


def install() -> None:
    cls = asg_responses.AutoScalingResponse
    cls.describe_scaling_activities = describe_scaling_activities
    cls.start_instance_refresh = start_instance_refresh
    cls.describe_instance_refreshes = describe_instance_refreshes
    cls.cancel_instance_refresh = cancel_instance_refresh
    cls.rollback_instance_refresh = rollback_instance_refresh
