"""Real target health for moto's ELBv2 target groups.

Stock moto reports every registered running instance `healthy` at once and never
`unhealthy`. Here each registered target of a target group used by a load balancer is
checked the way ELB does it
(docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html):
the target group's protocol (HTTP, or HTTPS without certificate verification), port (a
number, or `traffic-port`: the target's registered port), path and matcher, sent to the
target's private IP with `Host: <ip>:<port>` and `User-Agent: ELB-HealthChecker/2.0`,
redirects not followed, every interval, within the timeout.

States: a newly registered target is `initial` / `Elb.InitialHealthChecking` until a check
passes (`healthy`) or `UnhealthyThresholdCount` checks fail (`unhealthy`, with
`Target.ResponseCodeMismatch` and the codes, `Target.Timeout`, or
`Target.FailedHealthChecks`); a healthy target turns unhealthy after
`UnhealthyThresholdCount` failures and back after `HealthyThresholdCount` passes. A target
group no load balancer uses reports `unused` / `Target.NotInUse`; a deregistered target is
`draining` / `Target.DeregistrationInProgress` for the group's deregistration delay.

Intervals and timeouts can be shortened for tests (`configure(interval=..., timeout=...)`):
ELB's minimum interval is 5 s.

`RegisterTargets` refuses, before registering any, the instance targets that are not
`running` (a `pending` instance, see `ec2_instances.py`): `InvalidTarget` (HTTP 400) "The
following targets are not in a running state and cannot be registered: 'i-...'".

A target is an (Id, Port) pair, as ELB has it (API_TargetDescription.html: `Port` is the
port the target listens on, by default the target group's): one instance can be
registered several times on different ports (two ECS tasks in bridge network mode on one
container instance), each pair with its own health. moto keys targets by Id alone (a
second port replaces the first); here `FakeTargetGroup.targets` is a `Targets` table
keyed by (Id, Port). `DeregisterTargets` and `DescribeTargetHealth` take the pair, the
port defaulting to the target group's; `id in targets` with a bare Id says whether the
Id is registered on any port. An instance target is checked at the instance's private
IP and its registered port (or the target group's health check port when it is a
number).

ELB's own trouble, transient on AWS, can be played with `override(arn, state, reason,
description, count)`: the next `count` `DescribeTargetHealth` answers for that target
group (-1: until `clear_overrides()`) report that state for every target, whatever the
checks say. The documented cases
(docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html) are
`unavailable` / `Elb.InternalError` ("Target health is unavailable due to an internal
error") and `unhealthy` / `Elb.InternalError` ("The health checks failed due to an internal
error"); the descriptions AWS writes for them are not documented, the defaults below are
"Health checks failed due to an internal error" and "Target health is unavailable due to
an internal error".
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moto.elbv2 import models as elbv2_models
from moto.elbv2.exceptions import InvalidTargetError

import ec2_instances

_lock = threading.RLock()
_settings: dict[str, float | None] = {"interval": None, "timeout": None}
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="elb-health-check")
USER_AGENT = "ELB-HealthChecker/2.0"


class TargetState:
    def __init__(self) -> None:
        self.state = "initial"
        self.reason: str | None = "Elb.InitialHealthChecking"
        self.description: str | None = "Initial health checks in progress"
        self.passes = 0
        self.failures = 0
        self.next_check = 0.0
        self.in_flight = False


def configure(interval: float | None = None, timeout: float | None = None) -> None:
    """Overrides every target group's interval and timeout (seconds)."""
    _settings["interval"] = interval
    _settings["timeout"] = timeout


Key = tuple[str, Any]  # (Id, Port)


class Targets(OrderedDict):
    """A target group's registered targets, {(Id, Port): {"Id", "Port"}}. A bare Id is
    `in` the table when it is registered on any port."""

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return any(k[0] == key for k in self.keys())
        return super().__contains__(key)


def _port(value: Any) -> Any:
    """A port as a request gives it (int or str), as an int; None stays None."""
    return None if value is None else int(value)


def _key(tg: Any, target: dict[str, Any]) -> Key:
    """The (Id, Port) of a target description, its port defaulting to the group's."""
    port = target.get("Port")
    return target["Id"], _port(tg.port if port is None else port)


def _states(tg: Any) -> dict[Key, TargetState]:
    if not hasattr(tg, "_lg_states"):
        tg._lg_states = {}
        tg._lg_draining = {}
    return tg._lg_states


def _matches(matcher: str, status: int) -> bool:
    for part in matcher.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            if int(lo) <= status <= int(hi):
                return True
        elif part and int(part) == status:
            return True
    return False


def _check(tg: Any, ip: str, port: int) -> tuple[bool, str | None, str | None]:
    """One health check: (passed, reason, description)."""
    interval = _settings["interval"] or float(tg.health_check_interval_seconds)
    timeout = _settings["timeout"] or float(tg.health_check_timeout_seconds)
    timeout = min(timeout, interval)
    path = tg.health_check_path or "/"
    if tg.health_check_protocol == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(ip, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"{ip}:{port}")
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Connection", "close")
        conn.endheaders()
        response = conn.getresponse()
        status = response.status
        response.read(64 * 1024)
    except (socket.timeout, TimeoutError):
        return False, "Target.Timeout", "Request timed out"
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return False, "Target.FailedHealthChecks", "Health checks failed"
    finally:
        conn.close()
    matcher = (tg.matcher or {}).get("HttpCode", "200")
    if _matches(matcher, status):
        return True, None, None
    return False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"


def _record(tg: Any, key: Key, st: TargetState, result: tuple[bool, str | None, str | None]) -> None:
    passed, reason, description = result
    with _lock:
        st.in_flight = False
        if key not in tg.targets:
            return
        if passed:
            st.passes += 1
            st.failures = 0
            needed = 1 if st.state == "initial" else int(tg.healthy_threshold_count)
            if st.state != "healthy" and st.passes >= needed:
                st.state, st.reason, st.description = "healthy", None, None
        else:
            st.failures += 1
            st.passes = 0
            if st.failures >= int(tg.unhealthy_threshold_count) or st.state == "unhealthy":
                st.state, st.reason, st.description = "unhealthy", reason, description


def _target_address(backend: Any, tg: Any, target: dict[str, Any]) -> tuple[str, int] | None:
    target_id = target["Id"]
    if target_id.startswith("i-"):
        instance = backend.ec2_backend.get_instance_by_id(target_id)
        if instance is None:
            return None
        ip = instance.private_ip
    else:
        ip = target_id
    if not ip or not ip.startswith("127."):
        return None  # never send a check beyond this machine
    hc_port = tg.health_check_port
    port = int(target["Port"]) if hc_port in (None, "traffic-port") else int(hc_port)
    return ip, port


def _tick() -> None:
    now = time.time()
    for regions in list(elbv2_models.elbv2_backends.values()):
        for backend in list(regions.values()):
            for tg in list(backend.target_groups.values()):
                states = _states(tg)
                with _lock:
                    for key, until in list(tg._lg_draining.items()):
                        if now >= until:
                            del tg._lg_draining[key]
                if not tg.load_balancer_arns or not tg.health_check_enabled:
                    continue
                interval = _settings["interval"] or float(tg.health_check_interval_seconds)
                for key, target in list(tg.targets.items()):
                    with _lock:
                        st = states.setdefault(key, TargetState())
                        if st.in_flight or now < st.next_check:
                            continue
                        address = _target_address(backend, tg, target)
                        if address is None:
                            continue
                        st.in_flight = True
                        st.next_check = now + interval
                    future = _pool.submit(_check, tg, *address)
                    future.add_done_callback(
                        lambda f, tg=tg, key=key, st=st: _record(tg, key, st, f.result())
                    )


def _loop() -> None:
    while True:
        try:
            _tick()
        except Exception as err:  # noqa: BLE001 - keep checking whatever one group does
            print(f"target health checker: {err!r}", flush=True)
        time.sleep(0.05)


_original_init = elbv2_models.FakeTargetGroup.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.targets = Targets()


def _register(self: Any, targets: list[dict[str, Any]]) -> None:
    ec2_instances.refuse_not_running(self, targets)
    with _lock:
        states = _states(self)
        for t in targets:
            key = _key(self, t)
            self.targets[key] = {"Id": key[0], "Port": key[1]}
            self.deregistered_targets.pop(key[0], None)
            states[key] = TargetState()
            self._lg_draining.pop(key, None)


def _deregister(self: Any, targets: list[dict[str, Any]]) -> None:
    keys = [_key(self, t) for t in targets]
    if any(key not in self.targets for key in keys):
        raise InvalidTargetError()
    delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
    with _lock:
        states = _states(self)
        for key in keys:
            self.deregistered_targets[key[0]] = self.targets.pop(key)
            states.pop(key, None)
            self._lg_draining[key] = time.time() + delay


def _deregister_terminated_instances(self: Any, instance_ids: list[str]) -> None:
    for key in [k for k in self.targets if k[0] in instance_ids]:
        self.terminated_targets[key[0]] = self.targets.pop(key)


def _lookup(tg: Any, target: dict[str, Any]) -> Key:
    """The registered pair a DescribeTargetHealth target names: its port, else the group's,
    else the Id's only registration."""
    key = _key(tg, target)
    if target.get("Port") is None and key not in tg.targets:
        return next((k for k in tg.targets if k[0] == key[0]), key)
    return key


def _health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
    status = elbv2_models.FakeHealthStatus
    target_id = target["Id"]
    key = _lookup(self, target)
    registered = self.targets.get(key)
    port = key[1]
    hc_port = self.health_check_port
    with _lock:
        st = _states(self).get(key)  # makes _lg_draining too
        draining = self._lg_draining.get(key)
    if registered is None:
        if draining is not None:
            return status(target_id, port, hc_port, "draining", "Target.DeregistrationInProgress",
                          "Target deregistration is in progress")
        return status(target_id, port, hc_port, "unused", "Target.NotRegistered",
                      "Target is not registered to the target group")
    if not self.load_balancer_arns:
        return status(target_id, port, hc_port, "unused", "Target.NotInUse",
                      "Target group is not configured to receive traffic from the load balancer")
    if target_id.startswith("i-"):
        instance = ec2_backend.get_instance_by_id(target_id)
        if instance is not None and instance.state == "stopped":
            return status(target_id, port, hc_port, "unused", "Target.InvalidState",
                          "Target is in the stopped state")
    st = st or TargetState()
    return status(target_id, port, hc_port, st.state, st.reason, st.description)


# --- ELB's own errors, on request ----------------------------------------------------------

STATES = ("initial", "healthy", "unhealthy", "unhealthy.draining", "unused", "draining", "unavailable")
DEFAULT_DESCRIPTIONS = {
    "unhealthy": "Health checks failed due to an internal error",
    "unavailable": "Target health is unavailable due to an internal error",
}
_overrides: dict[str, dict[str, Any]] = {}


def override(arn: str, state: str, reason: str | None = "Elb.InternalError",
             description: str | None = None, count: int = 1) -> None:
    """The next `count` DescribeTargetHealth answers for `arn` (-1: all) report `state`."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}")
    with _lock:
        _overrides[arn] = {
            "state": state,
            "reason": reason,
            "description": description if description is not None else DEFAULT_DESCRIPTIONS.get(state),
            "count": int(count),
        }


def clear_overrides() -> None:
    """Ends every override: answers follow the health checks again."""
    with _lock:
        _overrides.clear()


def _take_override(arn: str) -> dict[str, Any] | None:
    """The override for this answer, if any, counting it."""
    with _lock:
        o = _overrides.get(arn)
        if o is None or o["count"] == 0:
            return None
        if o["count"] > 0:
            o["count"] -= 1
        return dict(o)


_original_describe_target_health = elbv2_models.ELBv2Backend.describe_target_health


def _describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
    """DescribeTargetHealth, with the target group's override applied to every target."""
    health = _original_describe_target_health(self, target_group_arn, targets)
    o = _take_override(target_group_arn)
    if o is None:
        return health
    status = elbv2_models.FakeHealthStatus
    return [
        status(h.instance_id, h.port, h.health_check_port, o["state"], o["reason"], o["description"])
        for h in health
    ]


def install() -> None:
    """Patches moto's target groups and starts the checker thread."""
    elbv2_models.FakeTargetGroup.__init__ = _init
    elbv2_models.FakeTargetGroup.register = _register
    elbv2_models.FakeTargetGroup.deregister = _deregister
    elbv2_models.FakeTargetGroup.deregister_terminated_instances = _deregister_terminated_instances
    elbv2_models.FakeTargetGroup.health_for = _health_for
    elbv2_models.ELBv2Backend.describe_target_health = _describe_target_health
    threading.Thread(target=_loop, daemon=True, name="elb-health-checker").start()
