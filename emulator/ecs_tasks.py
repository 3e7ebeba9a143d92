"""The tasks of ECS services for launch-gate's AWS emulator: where they run, their addresses
and host ports, their load balancer targets, and container instances. ecs_deployments.py
decides which tasks a service runs (its revisions and deployments) and calls this module
to start and stop them; both are installed by launch_gate_emulator.py.

Stock moto (5.2) gives an awsvpc task a random 10.x address whatever its subnet (and fails
when the VPC lacks `EnableDnsHostnames`), moves every task towards STOPPED each time it is
described, ignores `ListTasks`' `serviceName`, gives a task one container whatever its
task definition, and places no service task on a container instance. What AWS documents
(docs.aws.amazon.com/AmazonECS/latest/developerguide/task-networking.html,
networking-networkmode-bridge.html, networking-networkmode-host.html,
service-load-balancing.html, nlb.html; the API reference's Task, Container,
NetworkBinding, PortMapping, ListTasks, RegisterContainerInstance, ContainerInstance):

* a task has one container per container definition. A service's task is RUNNING until
  the service stops it (`desiredStatus` RUNNING, then STOPPED), `group` "service:<name>";
  `ListTasks` filters by `serviceName` and `containerInstance`, and lists only tasks whose
  desired status is RUNNING unless `desiredStatus` says otherwise;
* an awsvpc task has its own network interface in its first subnet (`attachments`, detail
  `privateIPv4Address`; its containers' `networkInterfaces`); a service's load balancer
  has it as an IP target (`Id` its address, `Port` the entry's `containerPort`);
* `RegisterContainerInstance` adds an EC2 instance to a cluster, `instanceIdentityDocument`
  (the instance's identity document, JSON) naming it by `instanceId`;
  `DescribeContainerInstances` answers it as `ec2InstanceId` (moto has both);
* a task in the `bridge` network mode (what an EC2 task definition gets when it names
  none) or `host` mode has no interface of its own: it runs on a container instance (its
  `containerInstanceArn`) and its containers listen on the instance's address. Once it is
  RUNNING each container with port mappings answers them as `networkBindings` ({bindIP,
  containerPort, hostPort, protocol}). In host mode the host port is the container port;
  in bridge mode a `hostPort` is that port of the instance, and a `hostPort` of 0, or
  none, a dynamic port from the instance's ephemeral range (its kernel's
  `ip_local_port_range`), so that several tasks of a service fit on one instance. The
  service's load balancer has such a task as an instance target: `Id` the EC2 instance
  id, `Port` the host port bound to the entry's container and container port. One
  instance can so be a target several times, on different ports (see target_health.py);
* a stopped task is deregistered from its target groups.

What the emulator does, where AWS leaves it to its scheduler or its network:

* an awsvpc task's address comes from its subnet through the allocator moto uses for the
  subnet's instances (tasks and instances never share one); a stopped task's interface is
  deleted (attachment `DELETED`) and its address never handed out again;
* RegisterContainerInstance refuses (InvalidParameterException) an instance moto does not
  know, or whose private IPv4 address is not in 127.0.0.0/8: the emulator binds ports and
  sends health checks to that address, and never beyond this machine;
* a service task of a bridge or host task definition (launch type EC2, or none; the task
  says EC2) goes to the cluster's ACTIVE container instances in turn (round-robin over
  the cluster, in registration order), passing over an instance whose EC2 instance is not
  `running` and one where a static host port it needs is held by another task that has
  not stopped, or reserved by the agent (the instance's registered `PORTS` /
  `PORTS_UDP`). A dynamic host port is drawn at random from 32768-60999 (Linux's default
  ephemeral range) among the ports no task holds on that instance and that can be bound
  (TCP, or UDP for a `udp` mapping) on the instance's private IP at that moment; the task
  holds its ports until it stops. `bindIP` is 0.0.0.0, `protocol` the mapping's (tcp by
  default). The instance's `runningTasksCount` and `pendingTasksCount` follow its tasks;
* a task that no instance can host is not started: the service gets the event "(service
  NAME) was unable to place a task because no container instance met all of its
  requirements." (once while the cause lasts) and ecs_deployments.py tries again at each
  tick;
* a task started while the setting `new_tasks_stay_pending` is on (ecs_deployments.py)
  stays PENDING (desired RUNNING): placed, holding its ports, but with no network
  bindings shown and registered with no target group; a service counts it in
  `pendingCount`.

Not emulated: CPU and memory reservations, placement constraints and strategies (AWS
spreads a service's tasks over availability zones by default), capacity providers,
`containerPortRange` / `hostPortRange`, the `none` network mode, and awsvpc tasks on
container instances (they keep their own interface, as on Fargate).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import random
import socket
import time
import uuid
from typing import Any

from moto.ec2 import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.utils import generate_dns_from_ip
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.elbv2.exceptions import InvalidTargetError
from moto.elbv2.models import elbv2_backends

LIVE = ("PENDING", "RUNNING")  # what a service counts towards its desired count
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DYNAMIC_PORTS = range(32768, 61000)  # 32768-60999
DYNAMIC_TRIES = 512
BIND_IP = "0.0.0.0"

Port = tuple[str, int]  # (protocol, host port)


def _now() -> float:
    return time.time()


def _time(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address) in LOOPBACK
    except ValueError:
        return False


def _elbv2(backend: Any) -> Any:
    return elbv2_backends[backend.account_id][backend.region_name]


def _ec2(backend: Any) -> Any:
    return ec2_backends[backend.account_id][backend.region_name]


# --- moto's tasks ---------------------------------------------------------------------------


_original_last_status = ecs_models.Task.last_status


def _last_status(self: Any) -> str:
    """A service's task keeps its status until the service changes it; moto moves the
    others one state towards STOPPED each time they are described."""
    if getattr(self, "_lg_revision", None) is not None:
        return self._status
    return _original_last_status.fget(self)


def task_ip(task: Any) -> str | None:
    """The address of the task's network interface (awsvpc), if any."""
    for attachment in task.attachments:
        for detail in attachment["details"]:
            if detail["name"] == "privateIPv4Address":
                return detail["value"]
    return None


_original_task_init = ecs_models.Task.__init__


def _task_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """moto's Task, its ENI's address taken from its subnet instead of a random 10.x one."""
    _original_task_init(self, *args, **kwargs)
    for attachment in self.attachments:
        if attachment["type"] != "ElasticNetworkInterface":
            continue
        details = {d["name"]: d for d in attachment["details"]}
        ec2 = ec2_backends[self._account_id][self.region_name]
        eni = ec2.get_network_interface(details["networkInterfaceId"]["value"])
        # The subnet's own allocator, which also gives instances their addresses.
        ip = eni.subnet.get_available_subnet_ip(instance=eni)
        dns = generate_dns_from_ip(ip)
        eni.private_ip_address = ip
        eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]
        if eni.private_dns_name is not None:  # the VPC has EnableDnsHostnames
            eni.private_dns_name = dns
            eni.private_ip_addresses[0]["PrivateDnsName"] = dns
        details["privateIPv4Address"]["value"] = ip
        details["privateDnsName"]["value"] = dns
        for container in self.containers:
            container.network_interfaces = [{"attachmentId": attachment["id"], "privateIpv4Address": ip}]


def _containers(task: Any, definition: Any) -> None:
    """One container per container definition (moto makes the first one only)."""
    first = task.containers[0]
    for spec in definition.container_definitions[len(task.containers):]:
        container = ecs_models.Container(definition)
        container.name = spec.get("name")
        container.image = spec.get("image")
        container.cpu = spec.get("cpu", 0)
        container.memory = spec.get("memory")
        container.environment = spec.get("environment")
        container.command = spec.get("command")
        container.network_interfaces = list(first.network_interfaces)
        task.containers.append(container)


_original_list_tasks = ecs_models.EC2ContainerServiceBackend.list_tasks


def _list_tasks(
    self: Any,
    cluster_str: str | None = None,
    container_instance: str | None = None,
    family: str | None = None,
    started_by: str | None = None,
    service_name: str | None = None,
    desiredStatus: str | None = None,  # noqa: N803 - moto's name
) -> list[Any]:
    """ListTasks with `serviceName` (moto ignores it), AWS's default desired status, and
`containerInstance` (moto's filter fails on a task on no instance)."""
    tasks = _original_list_tasks(self, cluster_str, None, family, started_by, None, desiredStatus or "RUNNING")
    if service_name:
        group = f"service:{service_name.split('/')[-1]}"
        tasks = [t for t in tasks if t.group == group]
    if container_instance:
        wanted = container_instance.split("/")[-1]
        tasks = [t for t in tasks if (t.container_instance_arn or "").split("/")[-1] == wanted]
    return tasks


# --- container instances and placement ----------------------------------------------------------


def hosted(definition: Any, launch_type: str | None) -> bool:
    """Whether tasks of the definition, with this launch type, run on container instances
    and publish host ports (bridge and host network modes)."""
    return (definition.network_mode or "bridge") in ("bridge", "host") and (launch_type or "EC2") == "EC2"


_original_register_instance = ecs_responses.EC2ContainerServiceResponse.register_container_instance


def register_container_instance(self: Any) -> Any:
    """RegisterContainerInstance of an instance moto knows, on a loopback address."""
    try:
        instance_id = json.loads(self._get_param("instanceIdentityDocument") or "")["instanceId"]
    except (TypeError, ValueError, KeyError):
        raise InvalidParameterException("instanceIdentityDocument must be a JSON document with an instanceId.")
    instance = _ec2(self.ecs_backend).get_instance_by_id(instance_id)
    if instance is None:
        raise InvalidParameterException(f"The instance {instance_id} does not exist.")
    if not _loopback(instance.private_ip):
        raise InvalidParameterException(
            f"instance {instance_id} has the private IPv4 address {instance.private_ip}: the emulator "
            "hosts tasks only on loopback addresses (127.0.0.0/8)"
        )
    return _original_register_instance(self)


class Placement:
    """Where one task goes: a container instance and each container's network bindings
    (in the task definition's container order)."""

    def __init__(self, instance: Any, bindings: list[list[dict[str, Any]]]) -> None:
        self.instance = instance
        self.bindings = bindings

    @property
    def ports(self) -> set[Port]:
        return {(b["protocol"], b["hostPort"]) for bindings in self.bindings for b in bindings}


def _address(backend: Any, instance: Any) -> str | None:
    """The container instance's private IPv4 address, if it can host a task now."""
    ec2 = _ec2(backend).get_instance_by_id(instance.ec2_instance_id)
    if ec2 is None or ec2.state != "running" or not _loopback(ec2.private_ip):
        return None
    return ec2.private_ip


def _held(backend: Any, instance: Any) -> set[Port]:
    """The host ports no new task may take on the instance: the agent's reserved ones and
    those of its tasks that have not stopped."""
    held: set[Port] = set()
    for resource in instance.registered_resources:
        protocol = {"PORTS": "tcp", "PORTS_UDP": "udp"}.get(resource.get("name"))
        if protocol:
            held |= {(protocol, int(p)) for p in resource.get("stringSetValue") or []}
    for task in backend.tasks.get(instance.cluster_name, {}).values():
        if (
            getattr(task, "_lg_revision", None) is not None
            and task.container_instance_arn == instance.container_instance_arn
            and task.last_status != "STOPPED"
        ):
            held |= getattr(task, "_lg_ports", set())
    return held


def _bindable(address: str, protocol: str, port: int) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _dynamic(address: str, protocol: str, taken: set[Port]) -> int | None:
    for _ in range(DYNAMIC_TRIES):
        port = random.choice(DYNAMIC_PORTS)
        if (protocol, port) not in taken and _bindable(address, protocol, port):
            return port
    return None


def _bindings(definition: Any, address: str, held: set[Port]) -> list[list[dict[str, Any]]] | None:
    """Each container's network bindings on an instance where the ports `held` are taken;
    None when a static port is taken or no dynamic port is free."""
    host_mode = definition.network_mode == "host"
    taken = set(held)
    answer = []
    for container in definition.container_definitions:
        bindings = []
        for mapping in container.get("portMappings") or []:
            container_port = mapping.get("containerPort")
            if container_port is None:
                continue  # a containerPortRange: not emulated
            protocol = (mapping.get("protocol") or "tcp").lower()
            host_port = int(container_port) if host_mode else int(mapping.get("hostPort") or 0)
            if host_port:
                if (protocol, host_port) in taken:
                    return None
            else:
                found = _dynamic(address, protocol, taken)
                if found is None:
                    return None
                host_port = found
            taken.add((protocol, host_port))
            bindings.append(
                {"bindIP": BIND_IP, "containerPort": int(container_port), "hostPort": host_port, "protocol": protocol}
            )
        answer.append(bindings)
    return answer


def _place(backend: Any, cluster_name: str, definition: Any) -> Placement | None:
    """The cluster's next ACTIVE container instance, in turn, that can host a task of the
    definition, with its bindings; None when none can."""
    instances = [i for i in backend.container_instances.get(cluster_name, {}).values() if i.status == "ACTIVE"]
    cluster = backend.clusters[cluster_name]
    start = getattr(cluster, "_lg_next_instance", 0)
    for step in range(len(instances)):
        index = (start + step) % len(instances)
        address = _address(backend, instances[index])
        if address is None:
            continue
        bindings = _bindings(definition, address, _held(backend, instances[index]))
        if bindings is None:
            continue
        cluster._lg_next_instance = index + 1
        return Placement(instances[index], bindings)
    return None


def _settle(task: Any, placement: Placement, running: bool) -> None:
    """Puts the task on its instance: `containerInstanceArn`, its ports held, its
    containers' `networkBindings` (shown once it runs)."""
    task.container_instance_arn = placement.instance.container_instance_arn
    task._lg_ports = placement.ports
    task._lg_bindings = placement.bindings
    # moto's StopTask gives a task's resources back to its instance.
    task.resource_requirements = {"CPU": 0, "MEMORY": 0, "PORTS": []}
    for container, bindings in zip(task.containers, placement.bindings):
        container.network_bindings = list(bindings) if running else []
    if running:
        placement.instance.running_tasks_count += 1
    else:
        placement.instance.pending_tasks_count += 1


def _instance(backend: Any, task: Any) -> Any | None:
    arn = task.container_instance_arn
    if not arn:
        return None
    return backend.container_instances.get(task.cluster_name, {}).get(arn.split("/")[-1])


def _instance_target(backend: Any, task: Any, container_name: str | None, container_port: int | None) -> dict[str, Any] | None:
    """{"Id": instance id, "Port": host port} for the task's binding of that container and
    container port; None for a task on no instance, or without that binding."""
    instance = _instance(backend, task)
    if instance is None or container_port is None:
        return None
    for container, bindings in zip(task.containers, getattr(task, "_lg_bindings", [])):
        if container_name is not None and container.name != container_name:
            continue
        for binding in bindings:
            if binding["containerPort"] == int(container_port):
                return {"Id": instance.ec2_instance_id, "Port": binding["hostPort"]}
    return None


# --- a service's tasks ------------------------------------------------------------------------------


def event(service: Any, message: str) -> None:
    """A service event, newest first; not repeated while it is the latest one."""
    if service.events and service.events[0]["message"] == message:
        return
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _time(_now()), "message": message})


def _register(backend: Any, revision: Any, task: Any) -> None:
    """Registers a running task with its revision's target groups."""
    ip = task_ip(task)
    for arn, container_name, container_port in revision.targets():
        if arn not in _elbv2(backend).target_groups:
            continue
        if ip is not None:
            target = {"Id": ip, "Port": container_port} if container_port is not None else None
        else:
            target = _instance_target(backend, task, container_name, container_port)
        if target is not None:
            _elbv2(backend).register_targets(arn, [target])
            task._lg_targets.append((arn, target))


def start(backend: Any, service: Any, revision: Any, count: int, running: bool) -> int:
    """Starts up to `count` tasks of the revision (RUNNING and registered with its target
    groups, or PENDING when not `running`); returns how many started. A task no container
    instance can host is not started, and `revision.unplaced` says so."""
    cluster = backend.clusters[service.cluster_name]
    definition = backend.describe_task_definition(revision.task_definition)
    on_instances = hosted(definition, revision.launch_type)
    status = "RUNNING" if running else "PENDING"
    revision.unplaced = False
    started = 0
    for _ in range(count):
        placement = _place(backend, cluster.name, definition) if on_instances else None
        if on_instances and placement is None:
            revision.unplaced = True
            event(service, f"(service {service.name}) was unable to place a task because no container "
                           "instance met all of its requirements.")
            break
        task = ecs_models.Task(
            cluster,
            definition,
            None,
            None,
            backend=backend,
            group=f"service:{service.name}",
            launch_type=revision.launch_type or ("EC2" if on_instances else ""),
            started_by=revision.deployment_id,
            networking_configuration=revision.network_configuration,
            platform_version=revision.platform_version,
        )
        task._lg_revision = revision.arn
        task._lg_targets = []
        _containers(task, definition)
        task.created_at = _time(_now())
        task.started_at = task.created_at if running else None
        task.last_status = status
        for container in task.containers:
            container.last_status = status
        if placement is not None:
            _settle(task, placement, running)
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        if running:
            _register(backend, revision, task)
        started += 1
    if started:
        revision.updated = _now()
    return started


def stop(backend: Any, task: Any, reason: str) -> None:
    """Deregisters the task from its target groups, stops it, frees its host ports and
    deletes its ENI."""
    for arn, target in task._lg_targets:
        if arn in _elbv2(backend).target_groups:
            try:
                _elbv2(backend).deregister_targets(arn, [target])
            except InvalidTargetError:
                pass  # deregistered by someone else
    task._lg_targets = []
    was = task.last_status
    stopped = _time(_now())
    task.last_status = task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = "ServiceSchedulerInitiated"
    task.stopping_at = task.stopped_at = task.execution_stopped_at = stopped
    for container in task.containers:
        container.last_status = "STOPPED"
    instance = _instance(backend, task)
    if instance is not None and was == "RUNNING":
        instance.running_tasks_count = max(0, instance.running_tasks_count - 1)
    elif instance is not None and was == "PENDING":
        instance.pending_tasks_count = max(0, instance.pending_tasks_count - 1)
    ec2 = _ec2(backend)
    for attachment in task.attachments:
        if attachment["type"] != "ElasticNetworkInterface":
            continue
        details = {d["name"]: d["value"] for d in attachment["details"]}
        # Its address stays taken in the subnet: no later task or instance reuses it,
        # which keeps IP-based assertions unambiguous.
        ec2.enis.pop(details["networkInterfaceId"], None)
        attachment["status"] = "DELETED"


def of_revision(backend: Any, service: Any, revision: Any, statuses: tuple[str, ...] = ("RUNNING",)) -> list[Any]:
    """The revision's tasks whose last status is one of `statuses`, oldest first."""
    return [
        t
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if getattr(t, "_lg_revision", None) == revision.arn and t.last_status in statuses
    ]


def scale(backend: Any, service: Any, revision: Any, count: int, running: bool) -> None:
    """Starts or stops (newest first) the revision's tasks until `count` run or are
    starting."""
    live = of_revision(backend, service, revision, LIVE)
    if len(live) < count:
        start(backend, service, revision, count - len(live), running)
    for task in reversed(live[count:]):
        stop(backend, task, f"Scaling activity initiated by (deployment {revision.deployment_id})")
    if len(live) > count:
        revision.updated = _now()


def sync_counts(backend: Any, service: Any) -> None:
    """The service's runningCount and pendingCount (and its cluster's) from its tasks."""
    group = f"service:{service.name}"
    statuses = [
        t.last_status
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if getattr(t, "_lg_revision", None) and t.group == group
    ]
    running, pending = statuses.count("RUNNING"), statuses.count("PENDING")
    cluster = backend.clusters.get(service.cluster_name)
    if cluster is not None:
        cluster.running_tasks_count += running - service.running_count
        cluster.pending_tasks_count += pending - service.pending_count
    service.running_count, service.pending_count = running, pending


def install() -> None:
    """Patches moto's tasks, ListTasks and RegisterContainerInstance. Idempotent."""
    # moto sets an ENI's private DNS name only in a VPC with EnableDnsHostnames, and its
    # awsvpc tasks read it unconditionally.
    NetworkInterface.private_dns_name = None
    ecs_models.Task.__init__ = _task_init
    ecs_models.Task.last_status = property(_last_status, _original_last_status.fset)
    ecs_models.EC2ContainerServiceBackend.list_tasks = _list_tasks
    ecs_responses.EC2ContainerServiceResponse.register_container_instance = register_container_instance
