"""launch-gate's AWS emulator: moto in server mode, plus the lifecycle-hook behaviour
stock moto lacks.

Stock moto (5.2) puts every launched instance straight InService, registers it with the
group's target groups at once, ignores `LifecycleHookSpecificationList`, and answers
`CompleteLifecycleAction` / `RecordLifecycleActionHeartbeat` with 500 NotImplemented.
This module patches moto's Auto Scaling backend and response classes so that, as on AWS
(docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html):

* an instance launched into a group with an `autoscaling:EC2_INSTANCE_LAUNCHING` hook
  waits in `Pending:Wait`, one lifecycle action (with its own token) per launch hook, and
  is *not* registered with the group's target groups or load balancers;
* `CompleteLifecycleAction` validates the group, hook, token and instance id and answers
  `ValidationError: No active Lifecycle Action found with instance ID ...` when nothing is
  pending (a second completion, a wrong token); `CONTINUE` on the last pending action
  puts the instance `InService` and registers it; `ABANDON` terminates it and the group
  launches a replacement;
* `RecordLifecycleActionHeartbeat` restarts the heartbeat timer; when a timer runs out the
  hook's `DefaultResult` is applied, and the global timeout is
  min(48 h, 100 x HeartbeatTimeout), which `DescribeLifecycleHooks` answers as each hook's
  `GlobalTimeout` (moto says 172800 whatever the heartbeat timeout);
* `CreateAutoScalingGroup` honours `LifecycleHookSpecificationList`;
* `DescribeAutoScalingInstances` lists a held instance with its group and `Pending:Wait`
  (a warm pool's with `Warmed:...`), and nothing for an instance of no group;
* warm pools (docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html,
  warm-pool-instance-lifecycle.html), as far as the gate needs: an instance launched into
  a group's pool (`PutWarmPool` first) with a launch hook waits in `Warmed:Pending:Wait`,
  one lifecycle action per launch hook (`Destination` `WarmPool`); `CONTINUE` of the last
  one moves it to the pool's state (`Warmed:Stopped`, EC2 `stopped`; `Warmed:Running`;
  `Warmed:Hibernated`, played as a stop), `ABANDON` terminates it. Pool instances are no
  part of the group's capacity, not registered, not in `DescribeAutoScalingGroups`'
  instances; `DescribeWarmPool` and `DescribeAutoScalingInstances` list them;
  `DeleteWarmPool` terminates them. Not emulated: the pool's sizing (`MinSize`,
  `MaxGroupPreparedCapacity`: instances enter the pool only by
  `POST /_launch_gate/warm-pool-launch`), replacing an abandoned pool instance, and
  instances leaving the pool for the group on a scale-out.

With `ec2_instances.py`, new instances can start `pending` (`--pending-seconds`) and
terminated instances lose their tags (`--terminated-tags-seconds`); a group instance
without launch hooks is then `Pending` until EC2 says `running`, and one whose last
`CONTINUE` came while it was `pending` is `Pending:Proceed` until then, being registered
with the group's target groups only when `running`. With `target_health.py`, target
health is computed by real ELB-style health checks; with `rollouts.py`, the group keeps
scaling activities (a launch abandoned by `CompleteLifecycleAction` or by the heartbeat
timeout each with AWS's own wording) and runs instance refreshes; with `ecs_deployments.py`,
ECS services run tasks and blue/green service deployments with Lambda lifecycle hooks, and
with `ecs_tasks.py` those tasks get their addresses, container instances, host ports and
load balancer targets.

It also serves a small control surface for tests under `/_launch_gate/`:
`GET /_launch_gate/lifecycle-actions` lists every lifecycle action (pending and ended)
with its token, `Origin` and `Destination`, heartbeats, completions and the calls that
failed;
`/_launch_gate/ecs/...` serves the Lambda lifecycle hooks of ECS blue/green deployments and
their settings (see ecs_deployments.py);
`GET /_launch_gate/calls` counts the API calls received, by operation;
`GET /_launch_gate/invocations` lists Lambda's asynchronous `Invoke` calls, with payloads;
`POST /_launch_gate/faults` with `{"operation": "DescribeTargetHealth", "status": 500,
"code": "InternalFailure", "count": 3}` makes the next `count` calls of that operation
fail (`count` -1: until `DELETE /_launch_gate/faults`; `status` defaults to 500, `code`
to InternalFailure, `count` to 1). Two optional keys:
`"after_effect": true` carries the call out (its effect happens: the lifecycle action is
completed, the target registered) and then answers the fault instead of moto's answer;
`"delay_seconds": X` answers X seconds late, after the effect if any. A fault is an
error unless its `status` is 2xx or it has `delay_seconds` and neither `status` nor
`code`: `{"operation": "CompleteLifecycleAction", "delay_seconds": 5}` (or with
`"status": 200`) is a slow success, carried out at once and answered 5 s later;
`GET /_launch_gate/settings` and `POST /_launch_gate/settings` with
`{"pending_seconds": 2, "terminated_tags_seconds": 0, "token_resolves_alone": true}` (any
of the keys) read and change the two EC2 settings of the command line at runtime, and
whether a lifecycle action call carrying a token is resolved by the token alone, its
`InstanceId` not looked at (AWS does not document which; default false: both must match);
`POST /_launch_gate/target-health` with `{"target_group_arn": ARN, "state":
"unavailable", "reason": "Elb.InternalError", "description": "...", "count": 2}` makes
the next `count` `DescribeTargetHealth` answers for that target group report that state
for every target (`reason` defaults to Elb.InternalError, `description` to a text for the
state, see target_health.py; `count` to 1, -1: until `DELETE /_launch_gate/target-health`);
`POST /_launch_gate/warm-pool-launch` with `{"group": NAME}` launches one instance into
the group's warm pool and answers `{"InstanceId", "LifecycleState",
"LifecycleActionTokens"}` (400 when the group has no warm pool, 404 when there is no such
group);
`POST /_launch_gate/age` with `{"instance_id": ID, "seconds": N}` makes the instance look
as if it had launched N seconds ago: its EC2 `LaunchTime` and, for each of its lifecycle
actions, the start and the global timeout's deadline move N seconds back (the hook's
global timeout, min(48 h, 100 x HeartbeatTimeout) from the start, ends N seconds sooner,
and then the timer thread applies `DefaultResult`, `EndedBy` `GlobalTimeout`), while the
heartbeat timer is left as it is (as if a heartbeat had just been recorded); answers
`{"InstanceId", "LaunchTime", "LifecycleActions"}` (400 unless N is a number >= 0, 404
for an unknown instance);
`POST /_launch_gate/ipv6-only` with `{"instance_id": ID, "ipv6": "::1"}` makes the
instance IPv6-only, as in an IPv6-only subnet: DescribeInstances shows no
`PrivateIpAddress` (nor any IPv4 address on its network interfaces), and `Ipv6Address`
and `NetworkInterfaces[0].Ipv6Addresses[0].Ipv6Address` the given address (`ipv6`
defaults to `::1`; see ec2_instances.py); answers `{"InstanceId", "Ipv6Address"}` (400
unless `ipv6` is a loopback IPv6 address, as the gate may connect to it; 404 for an
unknown instance).

Run: `python launch_gate_emulator.py --host 127.0.0.1 --port 0`; it prints
`launch-gate-emulator listening on http://HOST:PORT` once it accepts requests. Options:
`--elb-interval S`, `--elb-timeout S`, `--throttle`, `--pending-seconds S` (default 0),
`--terminated-tags-seconds S` (default -1). Tests: `test_emulator.py`.
"""

from __future__ import annotations

import argparse
import datetime
import io
import ipaddress
import json
import re
import sys
import threading
import time
import uuid
from typing import Any

from moto.autoscaling import models as asg_models
from moto.autoscaling import responses as asg_responses
from moto.autoscaling.exceptions import ValidationError
from moto.core.responses import ActionResult, EmptyResult
from moto.events import responses as events_responses
from moto.events.models import EventPattern
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

import ec2_instances
import ecs_deployments
import ecs_tasks
import iam_simulation
import rollouts
import target_health

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
GLOBAL_TIMEOUT_CAP_SECONDS = 48 * 3600

# One lock for every lifecycle-action mutation: the server is threaded and the timer
# thread applies DefaultResult concurrently with API calls.
_lock = threading.RLock()


def _now() -> float:
    return time.time()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    # RFC 3339 in UTC with a Z, as AWS writes times in events.
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


class LifecycleAction:
    """One lifecycle action: an instance held by one lifecycle hook."""

    def __init__(self, group: Any, hook: Any, instance_id: str, destination: str = "AutoScalingGroup") -> None:
        self.token = str(uuid.uuid4())
        # Where the instance goes: the group, or its warm pool (the event's `Destination`).
        self.destination = destination
        self.group_name = group.name
        self.group_arn = group.arn
        self.hook_name = hook.name
        self.transition = hook.lifecycle_transition
        self.instance_id = instance_id
        self.heartbeat_timeout = int(hook.heartbeat_timeout)
        self.default_result = hook.default_result
        self.notification_metadata = hook.notification_metadata
        self.started = _now()
        self.timer_start = self.started
        self.global_deadline = self.started + min(
            GLOBAL_TIMEOUT_CAP_SECONDS, 100 * self.heartbeat_timeout
        )
        self.heartbeats: list[float] = []
        self.result: str | None = None
        self.ended: float | None = None
        self.ended_by: str | None = None  # "CompleteLifecycleAction" | "HeartbeatTimeout" | ...
        self.completions: list[dict[str, Any]] = []

    @property
    def pending(self) -> bool:
        return self.result is None

    def view(self) -> dict[str, Any]:
        return {
            "LifecycleActionToken": self.token,
            "AutoScalingGroupName": self.group_name,
            "AutoScalingGroupARN": self.group_arn,
            "LifecycleHookName": self.hook_name,
            "LifecycleTransition": self.transition,
            "EC2InstanceId": self.instance_id,
            "Origin": "EC2",
            "Destination": self.destination,
            "NotificationMetadata": self.notification_metadata,
            "HeartbeatTimeout": self.heartbeat_timeout,
            "DefaultResult": self.default_result,
            "Started": _iso(self.started),
            "Heartbeats": [_iso(h) for h in self.heartbeats],
            "Pending": self.pending,
            "Result": self.result,
            "Ended": _iso(self.ended),
            "EndedBy": self.ended_by,
            "Completions": self.completions,
        }


def _actions(backend: Any) -> list[LifecycleAction]:
    if not hasattr(backend, "lifecycle_actions"):
        backend.lifecycle_actions = []
    return backend.lifecycle_actions


def _launch_hooks(backend: Any, group_name: str) -> list[Any]:
    return [
        h
        for h in backend.lifecycle_hooks.values()
        if h.auto_scaling_group_name == group_name and h.lifecycle_transition == LAUNCHING
    ]


def _state_of(group: Any, instance_id: str) -> Any | None:
    """The instance's state in the group, or in the group's warm pool."""
    return next(
        (s for s in group.instance_states + _warm(group) if s.instance.id == instance_id), None
    )


def _warm(group: Any) -> list[Any]:
    """The instances in the group's warm pool (moto keeps none): no part of its capacity."""
    if not hasattr(group, "_lg_warm"):
        group._lg_warm = []
    return group._lg_warm


def _forget(group: Any, instance_id: str) -> None:
    """Takes an instance out of the group and out of its warm pool."""
    group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
    group._lg_warm = [s for s in _warm(group) if s.instance.id != instance_id]


# --- launch: hold new instances in Pending:Wait -------------------------------------------

_original_replace = asg_models.FakeAutoScalingGroup.replace_autoscaling_group_instances


def _launch(group: Any, count_needed: int, propagated_tags: dict[str, str]) -> list[Any]:
    """Launches `count_needed` instances into the group, from the launch template version it
    launches now; returns their new states."""
    before = {s.instance.id for s in group.instance_states}
    ec2 = group.autoscaling_backend.ec2_backend
    version = rollouts.launch_version(group)
    run_instances = type(ec2).run_instances

    def run_version(*args: Any, launch_template: Any = None, **kwargs: Any) -> Any:
        # moto launches the template's default version whatever the group names.
        if launch_template is not None and version is not None:
            launch_template = {**launch_template, "Version": version}
        return run_instances(ec2, *args, launch_template=launch_template, **kwargs)

    with _lock:
        ec2.run_instances = run_version
        try:
            _original_replace(group, count_needed, propagated_tags)
        finally:
            del ec2.run_instances
    return [s for s in group.instance_states if s.instance.id not in before]


def _replace_with_hooks(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
    if rollouts.launch_suspended(self):
        return  # SuspendProcesses Launch: the group launches nothing until it is resumed
    hooks = _launch_hooks(self.autoscaling_backend, self.name)
    with _lock:
        capacity = len(self.instance_states)
        for state in _launch(self, count_needed, propagated_tags):
            rollouts.record_launch(self, state.instance, bool(hooks), capacity)
            capacity += 1
            if not hooks:
                if state.instance.state == "pending":
                    state.lifecycle_state = "Pending"  # InService once EC2 says running
                continue
            state.lifecycle_state = "Pending:Wait"
            for hook in hooks:
                _actions(self.autoscaling_backend).append(
                    LifecycleAction(self, hook, state.instance.id)
                )


def _active_instances(self: Any) -> list[Any]:
    # Capacity counts instances on their way in service too: a held instance is not a
    # reason to launch another.
    return [
        s
        for s in self.instance_states
        if s.lifecycle_state == "InService" or s.lifecycle_state.startswith("Pending")
    ]


def _in_service_ids(group: Any) -> set[str]:
    """The group's InService instances that EC2 says are running (only those can be
    registered with a target group)."""
    return {
        s.instance.id
        for s in group.instance_states
        if s.lifecycle_state == "InService" and s.instance.state == "running"
    }


def _update_attached_target_groups(self: Any, group_name: str) -> None:
    # Only InService instances are registered: AWS registers a launching instance at the
    # end of its launch lifecycle hooks, not before.
    group = self.autoscaling_groups[group_name]
    if not group.target_group_arns:
        return
    ids = _in_service_ids(group)
    for tg in self.elbv2_backend.describe_target_groups(
        target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None
    ):
        targets = [{"Id": i, "Port": tg.port} for i in ids if i not in tg.targets]
        if targets:
            self.elbv2_backend.register_targets(tg.arn, targets)


def _update_attached_elbs(self: Any, group_name: str) -> None:
    group = self.autoscaling_groups[group_name]
    if not group.load_balancer_names:
        return
    ids = _in_service_ids(group)
    for elb in self.elb_backend.describe_load_balancers(names=group.load_balancer_names):
        new = ids - set(elb.instance_ids)
        if new:
            self.elb_backend.register_instances(elb.name, new, from_autoscaling=True)


# --- ending a lifecycle action -------------------------------------------------------------


def _put_in_service(backend: Any, group: Any, state: Any) -> None:
    """InService and registered, or `Pending:Proceed` until EC2 says the instance is running."""
    if state.instance.state == "pending":
        state.lifecycle_state = "Pending:Proceed"
        return
    state.lifecycle_state = "InService"
    backend.update_attached_elbs(group.name)
    backend.update_attached_target_groups(group.name)


def _end(backend: Any, action: LifecycleAction, result: str, ended_by: str) -> None:
    """Ends one lifecycle action and, when it was the instance's last, moves the instance on."""
    action.result = result
    action.ended = _now()
    action.ended_by = ended_by
    group = backend.autoscaling_groups.get(action.group_name)
    if group is None:
        return
    state = _state_of(group, action.instance_id)
    if state is None:
        return
    warm = state in _warm(group)
    if result == "ABANDON":
        # The other hooks' actions for this instance end with it.
        for other in _actions(backend):
            if other.instance_id == action.instance_id and other.pending:
                other.result, other.ended, other.ended_by = "ABANDON", _now(), "InstanceAbandoned"
        rollouts.record_lifecycle_end(backend, action.instance_id, "ABANDON", action.token, ended_by)
        if warm:
            # Out of the pool and terminated; the pool's size is not kept (no replacement).
            _forget(group, action.instance_id)
            backend.ec2_backend.terminate_instances([action.instance_id])
        else:
            rollouts.replace(group, state)
        return
    still_pending = [
        a for a in _actions(backend) if a.instance_id == action.instance_id and a.pending
    ]
    if not still_pending:
        rollouts.record_lifecycle_end(backend, action.instance_id, "CONTINUE", action.token, ended_by)
        if warm:
            _warm_up(group, state)
        else:
            _put_in_service(backend, group, state)


def _find_pending(
    backend: Any, group_name: str, hook_name: str, token: str | None, instance_id: str | None
) -> LifecycleAction:
    if not token and not instance_id:
        raise ValidationError(
            "Either LifecycleActionToken or InstanceId must be specified."
        )
    for action in _actions(backend):
        if not action.pending:
            continue
        if action.group_name != group_name or action.hook_name != hook_name:
            continue
        if token and action.token != token:
            continue
        by_token_alone = bool(token) and autoscaling_settings["token_resolves_alone"]
        if instance_id and not by_token_alone and action.instance_id != instance_id:
            continue
        return action
    if instance_id:
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    raise ValidationError(f"No active Lifecycle Action found with token {token}")


def complete_lifecycle_action(self: Any) -> EmptyResult:
    group_name = self._get_param("AutoScalingGroupName")
    hook_name = self._get_param("LifecycleHookName")
    token = self._get_param("LifecycleActionToken")
    instance_id = self._get_param("InstanceId")
    result = self._get_param("LifecycleActionResult")
    backend = self.autoscaling_backend
    with _lock:
        record = {
            "At": _iso(_now()),
            "LifecycleActionResult": result,
            "WithToken": bool(token),
            "InstanceId": instance_id,
        }
        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(
                f"1 validation error detected: Value '{result}' at 'lifecycleActionResult' "
                "failed to satisfy constraint: Member must be one of CONTINUE, ABANDON"
            )
        try:
            action = _find_pending(backend, group_name, hook_name, token, instance_id)
        except ValidationError as err:
            record["Error"] = err.message
            for a in _actions(backend):
                if a.instance_id == instance_id or a.token == token:
                    a.completions.append(record)
            raise
        record["Accepted"] = True
        action.completions.append(record)
        _end(backend, action, result, "CompleteLifecycleAction")
    return EmptyResult()


def record_lifecycle_action_heartbeat(self: Any) -> EmptyResult:
    backend = self.autoscaling_backend
    with _lock:
        action = _find_pending(
            backend,
            self._get_param("AutoScalingGroupName"),
            self._get_param("LifecycleHookName"),
            self._get_param("LifecycleActionToken"),
            self._get_param("InstanceId"),
        )
        action.timer_start = _now()
        action.heartbeats.append(action.timer_start)
    return EmptyResult()


def _settle() -> None:
    """Makes the EC2 changes due (pending -> running, tags of terminated instances), puts
    in service the group instances that were only waiting for EC2 to say running, and
    drops terminated instances from warm pools."""
    from moto.autoscaling.models import autoscaling_backends

    for regions in list(autoscaling_backends.values()):
        for backend in list(regions.values()):
            for group in backend.autoscaling_groups.values():
                if getattr(group, "_lg_warm", None):
                    group._lg_warm = [
                        s for s in group._lg_warm if s.instance.state not in ("shutting-down", "terminated")
                    ]
    for instance in ec2_instances.settle():
        group = getattr(instance, "autoscaling_group", None)
        if group is None or group.autoscaling_backend.autoscaling_groups.get(group.name) is not group:
            continue
        state = next((s for s in group.instance_states if s.instance.id == instance.id), None)
        if state is not None and state.lifecycle_state in ("Pending", "Pending:Proceed"):
            _put_in_service(group.autoscaling_backend, group, state)


def _expire_timeouts() -> None:
    """Applies each hook's DefaultResult when its heartbeat or global timeout runs out."""
    from moto.autoscaling.models import autoscaling_backends

    while True:
        time.sleep(0.25)
        with _lock:
            _settle()
            for _account, regions in list(autoscaling_backends.items()):
                for _region, backend in list(regions.items()):
                    rollouts.tick(backend)
                    for action in list(getattr(backend, "lifecycle_actions", [])):
                        if not action.pending:
                            continue
                        instance = backend.ec2_backend.get_instance_by_id(action.instance_id)
                        if instance is not None and instance.state in ("shutting-down", "terminated"):
                            # A held instance terminated from outside: its actions end.
                            action.result, action.ended = "ABANDON", _now()
                            action.ended_by = "InstanceTerminated"
                            group = backend.autoscaling_groups.get(action.group_name)
                            if group is not None:
                                _forget(group, action.instance_id)
                            continue
                        now = _now()
                        if now >= action.global_deadline:
                            _end(backend, action, action.default_result, "GlobalTimeout")
                        elif now >= action.timer_start + action.heartbeat_timeout:
                            _end(backend, action, action.default_result, "HeartbeatTimeout")


# --- CreateAutoScalingGroup with LifecycleHookSpecificationList -----------------------------

_original_create_group = asg_responses.AutoScalingResponse.create_auto_scaling_group
_original_put_hook = asg_responses.AutoScalingResponse.put_lifecycle_hook


def _create_hook(backend: Any, group_name: str, spec: dict[str, Any]) -> None:
    hook = backend.create_lifecycle_hook(
        name=spec.get("LifecycleHookName"),
        as_name=group_name,
        transition=spec.get("LifecycleTransition"),
        timeout=int(spec["HeartbeatTimeout"]) if spec.get("HeartbeatTimeout") else None,
        result=spec.get("DefaultResult"),
    )
    hook.notification_metadata = spec.get("NotificationMetadata")


def create_auto_scaling_group(self: Any) -> Any:
    # Hooks first, so instances launched by the group's initial capacity are held.
    group_name = self._get_param("AutoScalingGroupName")
    for spec in self._get_param("LifecycleHookSpecificationList", []) or []:
        _create_hook(self.autoscaling_backend, group_name, spec)
    return _original_create_group(self)


def put_lifecycle_hook(self: Any) -> Any:
    _create_hook(
        self.autoscaling_backend,
        self._get_param("AutoScalingGroupName"),
        {
            "LifecycleHookName": self._get_param("LifecycleHookName"),
            "LifecycleTransition": self._get_param("LifecycleTransition"),
            "HeartbeatTimeout": self._get_param("HeartbeatTimeout"),
            "DefaultResult": self._get_param("DefaultResult"),
            "NotificationMetadata": self._get_param("NotificationMetadata"),
        },
    )
    return EmptyResult()


def _global_timeout(hook: Any) -> int:
    """GlobalTimeout as AWS answers it: min(48 h, 100 x HeartbeatTimeout)."""
    return min(GLOBAL_TIMEOUT_CAP_SECONDS, 100 * int(hook.heartbeat_timeout))


# --- warm pools ----------------------------------------------------------------------------
# docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html and
# warm-pool-instance-lifecycle.html. moto keeps a warm pool's configuration only.

WARM_STATES = {"Stopped": "Warmed:Stopped", "Running": "Warmed:Running", "Hibernated": "Warmed:Hibernated"}


def _warm_up(group: Any, state: Any) -> None:
    """The end of a launch into the warm pool: the pool's state, the instance stopped unless
    the pool is `Running` (hibernation is played as a stop)."""
    pool_state = group.warm_pool.pool_state if group.warm_pool is not None else "Stopped"
    state.lifecycle_state = WARM_STATES.get(pool_state, "Warmed:Stopped")
    if pool_state != "Running" and state.instance.state in ("pending", "running"):
        group.autoscaling_backend.ec2_backend.stop_instances([state.instance.id])


def launch_into_warm_pool(group: Any) -> Any:
    """Launches one instance into the group's warm pool, from the group's launch template:
    held in `Warmed:Pending:Wait` by the launch hooks, else warmed at once."""
    backend = group.autoscaling_backend
    if group.warm_pool is None:
        raise ValidationError(f"No warm pool found for Auto Scaling group {group.name}")
    hooks = _launch_hooks(backend, group.name)
    with _lock:
        state = _launch(group, 1, group.get_propagated_tags())[0]
        group.instance_states = [s for s in group.instance_states if s is not state]
        _warm(group).append(state)
        rollouts.record_warm_pool_launch(group, state.instance, bool(hooks))
        if not hooks:
            _warm_up(group, state)
            return state
        state.lifecycle_state = "Warmed:Pending:Wait"
        for hook in hooks:
            _actions(backend).append(LifecycleAction(group, hook, state.instance.id, "WarmPool"))
    return state


def describe_warm_pool(self: Any) -> ActionResult:
    """DescribeWarmPool, with the instances in the pool (moto lists none)."""
    group_name = self._get_param("AutoScalingGroupName")
    warm_pool = self.autoscaling_backend.describe_warm_pool(group_name=group_name)
    group = self.autoscaling_backend.autoscaling_groups.get(group_name)
    with _lock:
        instances = list(_warm(group)) if group is not None else []
    return ActionResult({"WarmPoolConfiguration": warm_pool, "Instances": instances})


_original_delete_warm_pool = asg_models.AutoScalingBackend.delete_warm_pool


def _delete_warm_pool(self: Any, group_name: str) -> None:
    """DeleteWarmPool: the pool's instances are terminated with it."""
    _original_delete_warm_pool(self, group_name)
    group = self.autoscaling_groups[group_name]
    with _lock:
        ids = [s.instance.id for s in _warm(group)]
        for action in _actions(self):
            if action.instance_id in ids and action.pending:
                action.result, action.ended, action.ended_by = "ABANDON", _now(), "WarmPoolDeleted"
        group._lg_warm = []
        if ids:
            self.ec2_backend.terminate_instances(ids)


_original_describe_asg_instances = asg_models.AutoScalingBackend.describe_auto_scaling_instances


def _describe_auto_scaling_instances(self: Any, instance_ids: list[str]) -> list[Any]:
    """DescribeAutoScalingInstances, warm pool instances too: AWS documents their
    `Warmed:*` lifecycle states for it (AutoScalingInstanceDetails.LifecycleState)."""
    states = _original_describe_asg_instances(self, instance_ids)
    with _lock:
        for group in self.autoscaling_groups.values():
            states += [s for s in _warm(group) if not instance_ids or s.instance.id in instance_ids]
    return states


def test_event_pattern(self):
    """EventBridge's TestEventPattern: whether `Event` (a JSON event) matches `EventPattern`,
    with moto's own matcher (the one its rules use)."""
    try:
        event = json.loads(self._get_param("Event") or "")
        result = EventPattern.load(self._get_param("EventPattern")).matches_event(event)
    except (ValueError, TypeError) as error:
        return self.error("InvalidEventPatternException", str(error))
    return json.dumps({"Result": result}), self.response_headers


def install() -> None:
    """Applies the patches to moto's Auto Scaling classes. Idempotent."""
    asg_models.FakeAutoScalingGroup.replace_autoscaling_group_instances = _replace_with_hooks
    asg_models.FakeAutoScalingGroup.active_instances = _active_instances
    asg_models.AutoScalingBackend.update_attached_target_groups = _update_attached_target_groups
    asg_models.AutoScalingBackend.update_attached_elbs = _update_attached_elbs
    asg_models.LifecycleHook.notification_metadata = None
    # moto writes 172800 whatever the heartbeat timeout; its assignment is ignored.
    asg_models.LifecycleHook.global_timeout = property(_global_timeout, lambda hook, value: None)
    asg_models.AutoScalingBackend.delete_warm_pool = _delete_warm_pool
    asg_models.AutoScalingBackend.describe_auto_scaling_instances = _describe_auto_scaling_instances
    cls = asg_responses.AutoScalingResponse
    cls.complete_lifecycle_action = complete_lifecycle_action
    cls.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat
    cls.create_auto_scaling_group = create_auto_scaling_group
    cls.put_lifecycle_hook = put_lifecycle_hook
    cls.describe_warm_pool = describe_warm_pool
    # EventBridge's TestEventPattern (moto answers nothing): `launch-gate doctor` tests
    # whether a rule's pattern matches a group's launch lifecycle events.
    events_responses.EventsHandler.test_event_pattern = test_event_pattern
    rollouts.install()
    ec2_instances.install()
    # IAM's SimulatePrincipalPolicy (moto has none): `launch-gate doctor` simulates the
    # function's role for the calls the gate makes.
    iam_simulation.install()
    ecs_tasks.install()
    ecs_deployments.install()


# --- the server ----------------------------------------------------------------------------


_calls: dict[str, int] = {}
_faults: dict[str, dict[str, Any]] = {}
_invocations: list[dict[str, Any]] = []


class TokenBucket:
    """AWS API throttling: `capacity` calls at once, refilled at `rate` per second."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens, self.stamp = capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# --throttle: buckets as documented for ELB (describe calls share one bucket of 40,
# refilled at 10/s) and EC2 (DescribeInstances: 50, refilled at 10/s), with the error
# each service answers when a bucket is empty.
_buckets: dict[str, tuple[TokenBucket, int, str]] = {}


def _enable_throttling() -> None:
    elb = (TokenBucket(40, 10), 400, "Throttling")
    for op in ("DescribeTargetGroups", "DescribeTargetHealth", "DescribeLoadBalancers", "DescribeListeners"):
        _buckets[op] = elb
    _buckets["DescribeInstances"] = (TokenBucket(50, 10), 503, "RequestLimitExceeded")
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def _json(start_response: Any, status: str, value: Any) -> list[bytes]:
    payload = json.dumps(value).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    """The JSON object a control request carries."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


def _fault(spec: dict[str, Any]) -> dict[str, Any]:
    """A fault as `POST /_launch_gate/faults` describes it. It is an error unless its status
    is 2xx, or it has a delay and neither status nor code (a slow success)."""
    delay = float(spec.get("delay_seconds", 0))
    status = int(spec.get("status", 500))
    slow_success = delay > 0 and "status" not in spec and "code" not in spec
    return {
        "status": status,
        "code": spec.get("code", "InternalFailure"),
        "message": spec.get("message", "injected by the launch-gate emulator"),
        "count": int(spec.get("count", 1)),
        "error": not (slow_success or 200 <= status < 300),
        "after_effect": bool(spec.get("after_effect", False)),
        "delay_seconds": delay,
    }


def _take_fault(operation: str) -> dict[str, Any] | None:
    """The fault for this call of `operation`, if any, counting it (caller holds the lock)."""
    fault = _faults.get(operation)
    if not fault or fault["count"] == 0:
        return None
    if fault["count"] > 0:
        fault["count"] -= 1
    return dict(fault)


# Where AWS is silent: whether a call that carries a lifecycle action token also checks the
# instance id beside it. AWS documents both parameters of `CompleteLifecycleAction` and
# `RecordLifecycleActionHeartbeat` ("the ID of the instance", "a universally unique
# identifier ... for the specific lifecycle action") and not what happens when they name
# two different actions. False: both must match one pending action; true: the token
# alone names it and the instance id is not looked at.
autoscaling_settings: dict[str, bool] = {"token_resolves_alone": False}


def _settings_view() -> dict[str, Any]:
    """The settings `/_launch_gate/settings` reads and changes."""
    return {**ec2_instances.settings, **autoscaling_settings}


def _find_group(name: str) -> Any | None:
    """The Auto Scaling group of that name, in any account and region."""
    from moto.autoscaling.models import autoscaling_backends

    for regions in list(autoscaling_backends.values()):
        for backend in list(regions.values()):
            if name in backend.autoscaling_groups:
                return backend.autoscaling_groups[name]
    return None


def _all_actions() -> list[LifecycleAction]:
    """Every lifecycle action, in any account and region."""
    from moto.autoscaling.models import autoscaling_backends

    return [
        a
        for regions in list(autoscaling_backends.values())
        for backend in list(regions.values())
        for a in getattr(backend, "lifecycle_actions", [])
    ]


def _age(body: dict[str, Any]) -> tuple[str, Any]:
    """`POST /_launch_gate/age`: the instance launched `seconds` earlier; (status, answer)."""
    instance_id = body.get("instance_id", "")
    try:
        seconds = float(body["seconds"])
    except (KeyError, TypeError, ValueError):
        return "400 Bad Request", {"error": "seconds must be a number"}
    if not seconds >= 0 or seconds == float("inf"):
        return "400 Bad Request", {"error": "seconds must be >= 0"}
    with _lock:
        instance = ec2_instances.find_instance(instance_id)
        if instance is None:
            return "404 Not Found", {"error": f"no instance {instance_id}"}
        ec2_instances.age(instance, seconds)
        actions = [a for a in _all_actions() if a.instance_id == instance_id]
        for action in actions:
            # The global timeout counts from the start; the heartbeat timer is left alone.
            action.started -= seconds
            action.global_deadline -= seconds
        return "200 OK", {
            "InstanceId": instance_id,
            "LaunchTime": instance.launch_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "LifecycleActions": [a.view() for a in actions],
        }


def _ipv6_only(body: dict[str, Any]) -> tuple[str, Any]:
    """`POST /_launch_gate/ipv6-only`: the instance IPv6-only at `ipv6`; (status, answer)."""
    instance_id = body.get("instance_id", "")
    try:
        address = ipaddress.IPv6Address(str(body.get("ipv6", "::1")))
    except ValueError as err:
        return "400 Bad Request", {"error": str(err)}
    if not address.is_loopback:
        return "400 Bad Request", {"error": f"{address} is not a loopback address (::1)"}
    with _lock:
        instance = ec2_instances.find_instance(instance_id)
        if instance is None:
            return "404 Not Found", {"error": f"no instance {instance_id}"}
        ec2_instances.make_ipv6_only(instance, str(address))
        return "200 OK", {"InstanceId": instance_id, "Ipv6Address": str(address)}


def _control(environ: dict[str, Any], start_response: Any, path: str, method: str) -> list[bytes] | None:
    """The controls added after the first ones: settings, target health, warm pool launches,
    age, IPv6-only, ECS deployments' hooks."""
    if path.startswith("/_launch_gate/ecs/"):
        answer = ecs_deployments.control(method, path, _body(environ) if method == "POST" else {})
        if answer is not None:
            return _json(start_response, *answer)
    if path == "/_launch_gate/age" and method == "POST":
        return _json(start_response, *_age(_body(environ)))
    if path == "/_launch_gate/ipv6-only" and method == "POST":
        return _json(start_response, *_ipv6_only(_body(environ)))
    if path == "/_launch_gate/settings" and method == "GET":
        return _json(start_response, "200 OK", _settings_view())
    if path == "/_launch_gate/settings" and method == "POST":
        body = _body(environ)
        unknown = set(body) - set(_settings_view())
        if unknown:
            return _json(start_response, "400 Bad Request", {"error": f"unknown settings: {sorted(unknown)}"})
        alone = body.get("token_resolves_alone", autoscaling_settings["token_resolves_alone"])
        if not isinstance(alone, bool):
            return _json(start_response, "400 Bad Request", {"error": "token_resolves_alone must be a boolean"})
        with _lock:
            try:
                ec2_instances.configure(body.get("pending_seconds"), body.get("terminated_tags_seconds"))
            except (TypeError, ValueError) as err:
                return _json(start_response, "400 Bad Request", {"error": str(err)})
            autoscaling_settings["token_resolves_alone"] = alone
            return _json(start_response, "200 OK", _settings_view())
    if path == "/_launch_gate/target-health" and method == "POST":
        body = _body(environ)
        try:
            target_health.override(
                body["target_group_arn"],
                body["state"],
                body.get("reason", "Elb.InternalError"),
                body.get("description"),
                int(body.get("count", 1)),
            )
        except (KeyError, ValueError) as err:
            return _json(start_response, "400 Bad Request", {"error": str(err)})
        return _json(start_response, "200 OK", {"ok": True})
    if path == "/_launch_gate/target-health" and method == "DELETE":
        target_health.clear_overrides()
        return _json(start_response, "200 OK", {"ok": True})
    if path == "/_launch_gate/warm-pool-launch" and method == "POST":
        name = _body(environ).get("group", "")
        with _lock:
            group = _find_group(name)
            if group is None:
                return _json(start_response, "404 Not Found", {"error": f"no Auto Scaling group {name}"})
            try:
                state = launch_into_warm_pool(group)
            except ValidationError as err:
                return _json(start_response, "400 Bad Request", {"error": err.message})
            tokens = [
                a.token for a in _actions(group.autoscaling_backend)
                if a.instance_id == state.instance.id
            ]
            return _json(
                start_response,
                "200 OK",
                {
                    "InstanceId": state.instance.id,
                    "LifecycleState": state.lifecycle_state,
                    "LifecycleActionTokens": tokens,
                },
            )
    return None


def _extension_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from moto.autoscaling.models import autoscaling_backends

    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    answer = _control(environ, start_response, path, method)
    if answer is not None:
        return answer
    if path == "/_launch_gate/lifecycle-actions":
        with _lock:
            body = [
                a.view()
                for regions in autoscaling_backends.values()
                for backend in regions.values()
                for a in getattr(backend, "lifecycle_actions", [])
            ]
        return _json(start_response, "200 OK", {"LifecycleActions": body})
    if path == "/_launch_gate/invocations":
        with _lock:
            return _json(start_response, "200 OK", {"Invocations": list(_invocations)})
    if path == "/_launch_gate/calls":
        with _lock:
            return _json(start_response, "200 OK", dict(_calls))
    if path == "/_launch_gate/faults" and method == "POST":
        fault = _body(environ)
        with _lock:
            _faults[fault["operation"]] = _fault(fault)
        return _json(start_response, "200 OK", {"ok": True})
    if path == "/_launch_gate/faults" and method == "DELETE":
        with _lock:
            _faults.clear()
        return _json(start_response, "200 OK", {"ok": True})
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"unknown launch-gate emulator path\n"]


def _operation(environ: dict[str, Any]) -> str | None:
    """The API operation of a request: the `X-Amz-Target` of a JSON-protocol request
    (EventBridge's `AWSEvents.PutEvents`), or the `Action` of a query-protocol one (EC2,
    Auto Scaling, ELBv2), keeping the body readable for moto."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    from urllib.parse import parse_qs

    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else None


def _fault_response(environ: dict[str, Any], start_response: Any, fault: dict[str, Any]) -> list[bytes]:
    code, message = fault["code"], fault["message"]
    content_type = "text/xml"
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": code, "message": message})
        content_type = "application/x-amz-json-1.1"
    elif "/ec2/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            "</Error></Errors><RequestID>launch-gate-fault</RequestID></Response>"
        )
    else:
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>launch-gate-fault</RequestId></ErrorResponse>"
        )
    payload = body.encode()
    reason = {500: "Internal Server Error", 503: "Service Unavailable", 400: "Bad Request", 429: "Too Many Requests"}
    start_response(
        f"{fault['status']} {reason.get(fault['status'], 'Error')}",
        [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def _call_moto(moto_app: Any, environ: dict[str, Any]) -> tuple[str, list[Any], bytes]:
    """Carries the call out in moto; returns its answer (status, headers, body) unsent."""
    answer: dict[str, Any] = {}

    def capture(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    result = moto_app(environ, capture)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], body


def _faulty(moto_app: Any, environ: dict[str, Any], start_response: Any, fault: dict[str, Any]) -> list[bytes]:
    """Answers a call a fault applies to: carried out first unless it is an error that is
    not `after_effect`, then `delay_seconds` of silence, then the fault or moto's answer."""
    answer = None
    if not fault["error"] or fault["after_effect"]:
        answer = _call_moto(moto_app, environ)
    if fault["delay_seconds"] > 0:
        time.sleep(fault["delay_seconds"])
    if fault["error"]:
        return _fault_response(environ, start_response, fault)
    status, headers, body = answer
    start_response(status, headers)
    return [body]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--elb-interval", type=float, default=None,
        help="seconds between target health checks, for every target group (tests: 0.5)",
    )
    parser.add_argument(
        "--elb-timeout", type=float, default=None,
        help="target health check timeout in seconds, for every target group",
    )
    parser.add_argument(
        "--throttle", action="store_true",
        help="throttle ELB describe calls (40, refilled at 10/s) and DescribeInstances (50, 10/s) as AWS does",
    )
    parser.add_argument(
        "--pending-seconds", type=float, default=0.0,
        help="seconds a new instance stays `pending` before `running` (0: running at once, as moto)",
    )
    parser.add_argument(
        "--terminated-tags-seconds", type=float, default=-1.0,
        help="seconds after termination an instance loses all its tags (-1: never, as moto; 0: at once)",
    )
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("--host must be a loopback address (127.0.0.0/8)")

    install()
    ec2_instances.configure(args.pending_seconds, args.terminated_tags_seconds)
    target_health.configure(interval=args.elb_interval, timeout=args.elb_timeout)
    target_health.install()
    if args.throttle:
        _enable_throttling()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_launch_gate/"):
            return _extension_view(environ, start_response)
        invoke = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if invoke and environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event":
            # Lambda's asynchronous Invoke: recorded, for the test to deliver as Lambda
            # would, and accepted with 202 (moto would need Docker to run a function).
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            with _lock:
                _calls["Invoke"] = _calls.get("Invoke", 0) + 1
                _invocations.append(
                    {"FunctionName": invoke.group(1), "Payload": json.loads(body or b"null")}
                )
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        operation = _operation(environ)
        fault = None
        with _lock:
            _settle()  # EC2 states and tags exact to this request
            if operation:
                _calls[operation] = _calls.get(operation, 0) + 1
                fault = _take_fault(operation)
                bucket = _buckets.get(operation)
                if (fault is None or not fault["error"]) and bucket and not bucket[0].take():
                    _calls[f"Throttled:{operation}"] = _calls.get(f"Throttled:{operation}", 0) + 1
                    return _fault_response(
                        environ,
                        start_response,
                        {"status": bucket[1], "code": bucket[2], "message": "Rate exceeded"},
                    )
        if fault is not None:
            return _faulty(moto_app, environ, start_response, fault)
        return moto_app(environ, start_response)

    server = make_server(args.host, args.port, app, True, request_handler=MotoRequestHandler)
    threading.Thread(target=_expire_timeouts, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"launch-gate-emulator listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
