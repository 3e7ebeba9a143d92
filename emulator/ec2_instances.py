"""EC2 instance states for launch-gate's AWS emulator: `pending` at launch, and the tags of
terminated instances going away.

Stock moto (5.2) puts a new instance `running` the moment it is launched and keeps the
tags of a terminated instance forever. On AWS:

* a new instance is `pending` (state code 0) for a while, already with its private IP,
  then `running` (16)
  (docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html); while it is
  `pending`, ELBv2 `RegisterTargets` refuses it with `InvalidTarget` (HTTP 400) "The
  following targets are not in a running state and cannot be registered: 'i-...'". With
  `pending_seconds` > 0 each instance launched by `RunInstances` or by an Auto Scaling
  group stays `pending` that long (default 0: `running` at once, as in moto);
* EC2 gradually disassociates the tags of a terminated instance, within the hour and
  sometimes much sooner (docs.aws.amazon.com/AWSEC2/latest/UserGuide/terminating-instances.html).
  With `terminated_tags_seconds` >= 0 every tag of an instance is removed that many
  seconds after it entered `terminated` (TerminateInstances, an ABANDON, an instance
  refresh's replacement, a scale-in), for `DescribeInstances` (with or without tag
  filters) and `DescribeTags` alike (default -1: tags are kept, as in moto).

Both settings can change at runtime (`settings`); `pending_seconds` applies to instances
launched afterwards, `terminated_tags_seconds` to every terminated instance from then on.
`settle()` makes the changes due; the emulator calls it before each API call and from its
timer thread, so answers are exact to the request, not to the tick.

Two changes to one instance, for the emulator's test controls:

* `age(instance, seconds)` moves its `LaunchTime` that many seconds back;
* `make_ipv6_only(instance, address)` makes it an instance of an IPv6-only subnet
  (docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html,
  docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-naming.html): no IPv4 address,
  private or public, on the instance or its network interfaces, the IPv4 address going
  back to the subnet; `Ipv6Address` (the instance's, which boto3 and the Rust SDK's
  `Instance::ipv6_address()` read) and the primary interface's first `Ipv6Addresses` entry
  the given address; `PrivateDnsName` the resource name (`i-....ec2.internal` in
  us-east-1, `i-....REGION.compute.internal` elsewhere), the only hostname type AWS allows
  there. moto 5.2 has no XML template for DescribeInstances: it serializes the models, so
  the instance gets an `ipv6_address` attribute (moto has none) and its interfaces lose
  `private_ip_address`, `private_ip_addresses` and `public_ip`; `Instance.private_dns_name`
  is patched to give the resource name to an instance without an IPv4 address (moto's
  would fail on it).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.elbv2.exceptions import ELBClientError

settings: dict[str, float] = {"pending_seconds": 0.0, "terminated_tags_seconds": -1.0}


def configure(pending_seconds: float | None = None, terminated_tags_seconds: float | None = None) -> None:
    """Sets either setting; `None` leaves it as it is."""
    if pending_seconds is not None:
        settings["pending_seconds"] = max(0.0, float(pending_seconds))
    if terminated_tags_seconds is not None:
        settings["terminated_tags_seconds"] = float(terminated_tags_seconds)


# --- pending at launch ---------------------------------------------------------------------

_original_run_instances = InstanceBackend.run_instances


def _run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
    """RunInstances, and every Auto Scaling launch: new instances start `pending`."""
    reservation = _original_run_instances(self, *args, **kwargs)
    seconds = settings["pending_seconds"]
    if seconds > 0:
        running_at = time.time() + seconds
        for instance in reservation.instances:
            instance._state.name, instance._state.code = "pending", 0
            instance._lg_running_at = running_at
    return reservation


def _flip_pending(backend: Any, now: float) -> list[Any]:
    """Puts `running` the pending instances whose time has come; returns them."""
    flipped = []
    for instance in backend.all_instances():
        due = getattr(instance, "_lg_running_at", None)
        if due is None or now < due:
            continue
        instance._lg_running_at = None
        if instance.state == "pending":  # not stopped or terminated meanwhile
            instance._state.name, instance._state.code = "running", 16
            flipped.append(instance)
    return flipped


class TargetNotRunning(ELBClientError):
    """ELBv2's answer to registering an instance that is not `running`."""

    def __init__(self, instance_ids: list[str]) -> None:
        # AWS documents the wording for one target; for several, the list is our guess.
        listed = ", ".join(f"'{i}'" for i in instance_ids)
        super().__init__(
            "InvalidTarget",
            f"The following targets are not in a running state and cannot be registered: {listed}",
        )


def refuse_not_running(tg: Any, targets: list[dict[str, Any]]) -> None:
    """Raises InvalidTarget, before anything is registered, when an instance target is not
    `running` (moto checks one at a time, after registering the ones before)."""
    not_running = []
    for target in targets:
        instance = tg.ec2_backend.get_instance_by_id(target["Id"])
        if instance is not None and instance.state != "running":
            not_running.append(target["Id"])
    if not_running:
        raise TargetNotRunning(not_running)


# --- tags of terminated instances ----------------------------------------------------------

_original_terminate = Instance.terminate


def _terminate(self: Any) -> Any:
    """Instance.terminate, noting when the instance entered `terminated`."""
    was = self.state
    previous = _original_terminate(self)
    if was != "terminated":
        self._lg_terminated_at = time.time()
    return previous


def _drop_terminated_tags(backend: Any, now: float) -> None:
    """Removes every tag of the instances terminated `terminated_tags_seconds` ago."""
    seconds = settings["terminated_tags_seconds"]
    if seconds < 0:
        return
    for instance in backend.all_instances():
        at = getattr(instance, "_lg_terminated_at", None)
        if at is not None and now >= at + seconds and backend.tags.get(instance.id):
            backend.tags.pop(instance.id, None)


def settle(now: float | None = None) -> list[Any]:
    """Makes every due change (pending -> running, tags dropped); returns the instances
    that turned `running`. The caller holds the emulator's lock."""
    now = time.time() if now is None else now
    flipped: list[Any] = []
    for _account, regions in list(ec2_backends.items()):
        for _region, backend in list(regions.items()):
            flipped += _flip_pending(backend, now)
            _drop_terminated_tags(backend, now)
    return flipped


# --- test controls: one instance older, or IPv6-only ---------------------------------------


def find_instance(instance_id: str) -> Any | None:
    """The EC2 instance of that id, in any account and region."""
    for _account, regions in list(ec2_backends.items()):
        for _region, backend in list(regions.items()):
            for instance in backend.all_instances():
                if instance.id == instance_id:
                    return instance
    return None


def age(instance: Any, seconds: float) -> None:
    """Moves the instance's `LaunchTime` `seconds` back."""
    instance.launch_time = instance.launch_time - datetime.timedelta(seconds=seconds)


def _resource_name(instance: Any) -> str:
    """The resource-based hostname AWS gives an instance (the only one in an IPv6-only subnet)."""
    if instance.region_name == "us-east-1":
        return f"{instance.id}.ec2.internal"
    return f"{instance.id}.{instance.region_name}.compute.internal"


def make_ipv6_only(instance: Any, address: str) -> None:
    """Makes the instance IPv6-only at `address`: no IPv4 address on it or its interfaces."""
    subnet = None
    if instance.subnet_id:
        try:
            subnet = instance.ec2_backend.get_subnet(instance.subnet_id)
        except Exception:  # noqa: BLE001 - subnet gone: no address to give back
            subnet = None
    for ip in list(instance._private_ips):
        if subnet is not None:
            subnet.del_subnet_ip(ip)
        instance._private_ips.discard(ip)
    for index, nic in sorted(instance.nics.items()):
        nic.private_ip_address = None
        nic.private_ip_addresses = []
        nic.public_ip = None
        nic.private_dns_name = _resource_name(instance) if index == 0 else None
        if index == 0:
            nic.ipv6_addresses = [address] + [a for a in nic.ipv6_addresses if a != address]
    instance.ipv6_address = address


_original_private_dns_name = Instance.private_dns_name


def _private_dns_name(self: Any) -> str:
    """moto's IP-based name, or the resource name for an instance without an IPv4 address."""
    if self.private_ip is None:
        return _resource_name(self)
    return _original_private_dns_name.fget(self)


def install() -> None:
    """Patches moto's EC2 instances. Idempotent."""
    InstanceBackend.run_instances = _run_instances
    Instance.terminate = _terminate
    Instance.private_dns_name = property(_private_dns_name)
