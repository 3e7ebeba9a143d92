"""ECS native blue/green service deployments with Lambda lifecycle hooks, for launch-gate's
AWS emulator.

Stock moto (5.2) keeps no `deploymentConfiguration` from `CreateService`, runs no task for a
service, ignores `ListTasks`' `serviceName`, gives an awsvpc task a random 10.x address
whatever its subnet (and fails when the VPC lacks `EnableDnsHostnames`), moves every task
towards STOPPED each time it is described, and has no service revisions or service
deployments. This module adds them, as AWS documents them
(docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html,
blue-green-deployment-how-it-works.html, lambda-lifecycle-hooks.html, service-deployment.html):

* services keep their `deploymentConfiguration`; `DescribeServices` answers it with
  `currentServiceDeployment` (an ARN) and `currentServiceRevisions` ({arn,
  requestedTaskCount, runningTaskCount, pendingTaskCount}: the current revision, and the
  target revision while a deployment is in progress);
* service revisions (`arn:aws:ecs:R:A:service-revision/<cluster>/<service>/<19 digits>`):
  `CreateService` (deployment controller ECS, REPLICA, with a task definition) makes the
  first one, records a service deployment for it (SUCCESSFUL at once, no hooks) and starts
  `desiredCount` tasks of it: RUNNING until the service stops them, `group`
  "service:<name>", `startedBy` "ecs-svc/<revision number>" (AWS calls it the deployment
  ID; that it is the revision's number is our choice). `DescribeServiceRevisions` answers
  the revision with the service's `loadBalancers` (with `advancedConfiguration`) and its
  `resolvedConfiguration.loadBalancers`: [{targetGroupArn, productionListenerRule}], the
  target group that serves (or will serve) the revision's production traffic;
* every awsvpc task's ENI gets its private IP from its first subnet, through the allocator
  moto uses for the subnet's instances (so tasks and instances never share an address):
  the task's `attachments` detail `privateIPv4Address` and its containers'
  `networkInterfaces` say it. An awsvpc task of a service is registered, as an IP target
  (`Id` its IP, `Port` the load balancer entry's `containerPort`), with its revision's
  target group of each load balancer entry; a stopped one is deregistered, its ENI
  deleted (attachment `DELETED`), its address never handed out again;
* `ListTasks` filters by `serviceName` (tasks of group "service:<name>") and, as AWS does,
  lists only tasks whose desired status is RUNNING unless `desiredStatus` says otherwise;
* `UpdateService` of a service whose `deploymentConfiguration.strategy` is BLUE_GREEN, with
  a task definition other than its latest revision's or `forceNewDeployment`, starts a
  service deployment (`arn:aws:ecs:R:A:service-deployment/<cluster>/<service>/<21
  alphanumerics>`) to a new target revision whose green target groups are, per load
  balancer entry, whichever of `targetGroupArn` / `advancedConfiguration.
  alternateTargetGroupArn` does not serve production now. It walks PRE_SCALE_UP, SCALE_UP
  (the green tasks start and are registered with the green target groups), POST_SCALE_UP,
  TEST_TRAFFIC_SHIFT (test weight 100), POST_TEST_TRAFFIC_SHIFT,
  PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (production weight 100),
  POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (no wait) and CLEAN_UP (the blue tasks stop and
  are deregistered; the target becomes the current revision, its green target groups
  production), then SUCCESSFUL. A stage without hooks passes at once. Other services, and
  other updates, keep moto's behaviour, but a service whose `desiredCount` changes outside
  a deployment has its current revision's tasks started or stopped to match;
* Lambda lifecycle hooks (`deploymentConfiguration.lifecycleHooks`, target type
  AWS_LAMBDA; PAUSE hooks are ignored): at a stage with hooks the deployment waits for one
  execution per hook. The test plays Lambda: it fetches the due invocations (each payload
  exactly the documented event: `executionId`, `lifecycleStage`, `resourceArn` the
  deployment's ARN, `executionDetails` {serviceArn, targetServiceRevisionArn,
  testTrafficWeights, productionTrafficWeights}, and `hookDetails` when there are any) and
  posts each function's output. ECS's rules apply: `hookStatus` SUCCEEDED ends the hook
  (the deployment moves on when every hook of the stage has); FAILED, a missing or unknown
  `hookStatus`, an output that is not a JSON object, or a function error roll the
  deployment back; IN_PROGRESS merges the output's `hookDetails` object into the
  execution's and invokes again, with the same `executionId`, `callBackDelay` seconds
  later (an integer >= 0, default 30; anything else is an invalid output). A hook not
  resolved within `timeoutConfiguration.timeoutInMinutes` (default 1440) applies its
  `action` (ROLLBACK, the default, or CONTINUE). The deployment's `lifecycleHookDetails`
  lists every execution so far, its `hookId` the `executionId`;
* a rollback: ROLLBACK_IN_PROGRESS at once, the target's traffic weights back to 0 (so
  production stays on, or returns to, the blue target groups), then at the next tick
  (~0.2 s) the green tasks stop and are deregistered, and ROLLBACK_SUCCESSFUL. `rollback`
  {reason, startedAt, serviceRevisionArn: the source revision} and `statusReason` say why;
* a deployment that an `UpdateService` supersedes while in progress is undone the same
  way at once and ends STOPPED (AWS does not document this case);
* `DescribeServiceDeployments` (unknown ARNs are failures with reason MISSING),
  `ListServiceDeployments` (newest first; `status`, `createdAt`, `maxResults`,
  `nextToken`) and `DescribeServiceRevisions`.

Not emulated: listener rules are not rewritten (the weights are the deployment's record
only), no hook runs on a service's creation, a rollback re-invokes no hook (AWS re-invokes
TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks), RECONCILE_SERVICE, linear and
canary strategies, bake time, circuit breaker and alarms, a service's `deployments` list
(moto's), and the scheduler's answer to `StopTask` or `DeleteService` (a service's task
stopped that way is not replaced nor deregistered; a deleted service's tasks keep running).

Control surface (routed by launch_gate_emulator.py, `control(method, path, body)`):
`GET /_launch_gate/ecs/hook-invocations` hands out the due invocations: [{"executionId",
"hookTargetArn", "roleArn", "payload"}], each once; `POST /_launch_gate/ecs/hook-response`
with {"executionId", "response": <the function's output>, "error": <bool>} answers one
(404 unknown execution, 409 when no invocation of it awaits an answer, 400 malformed);
`GET /_launch_gate/ecs/hook-responses` lists every answer received; `GET` / `POST
/_launch_gate/ecs/settings` with {"ecs_hook_minute_seconds": 60} read and change how many
seconds a hook timeout's "minute" lasts. Tests: `test_ecs_deployments.py`.
"""

from __future__ import annotations

import copy
import datetime
import json
import random
import string
import threading
import time
import uuid
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2 import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.utils import generate_dns_from_ip
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.elbv2.models import elbv2_backends
from moto.utilities.utils import get_partition

# One lock for every change to services, tasks, revisions and deployments: the server is
# threaded and the timer thread moves deployments on concurrently with API calls.
_lock = threading.RLock()
settings: dict[str, float] = {"ecs_hook_minute_seconds": 60.0}

STAGES = (
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
)
ONGOING = ("IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
DEFAULT_CALLBACK_DELAY = 30
DEFAULT_TIMEOUT_MINUTES = 1440
TICK_SECONDS = 0.2
MAX_ARNS = 20  # DescribeServiceDeployments and DescribeServiceRevisions take 20 at most

_hook_responses: list[dict[str, Any]] = []


def _now() -> float:
    return time.time()


def _time(ts: float | None) -> datetime.datetime | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def configure(hook_minute_seconds: float | None = None) -> None:
    """Sets how many seconds a minute of a hook's timeout lasts; `None` leaves it."""
    if hook_minute_seconds is None:
        return
    value = float(hook_minute_seconds)
    if not value > 0:
        raise ValueError("ecs_hook_minute_seconds must be > 0")
    settings["ecs_hook_minute_seconds"] = value


def _arn(backend: Any, resource: str) -> str:
    region = backend.region_name
    return f"arn:{get_partition(region)}:ecs:{region}:{backend.account_id}:{resource}"


# --- state on moto's objects ----------------------------------------------------------------


def _revisions(backend: Any) -> dict[str, Revision]:
    if not hasattr(backend, "_lg_revisions"):
        backend._lg_revisions = {}
    return backend._lg_revisions


def _deployments(backend: Any) -> dict[str, Deployment]:
    if not hasattr(backend, "_lg_deployments"):
        backend._lg_deployments = {}
    return backend._lg_deployments


def _current(service: Any) -> Revision | None:
    """The service's current revision: the one serving production (None: not managed here)."""
    return getattr(service, "_lg_revision", None)


def _ongoing(service: Any) -> Deployment | None:
    deployment = getattr(service, "_lg_deployment", None)
    return deployment if deployment is not None and deployment.status in ONGOING else None


class Revision:
    """One service revision: what the service's tasks run, and where they are registered."""

    def __init__(self, backend: Any, service: Any, resolved: list[dict[str, Any]], requested: int) -> None:
        self.number = str(random.randrange(10**18, 10**19))
        self.arn = _arn(backend, f"service-revision/{service.cluster_name}/{service.name}/{self.number}")
        self.service_arn = service.arn
        self.cluster_arn = service.cluster_arn
        self.task_definition = service.task_definition
        self.launch_type = service.launch_type
        self.platform_version = service.platform_version
        self.load_balancers = copy.deepcopy(service.load_balancers)
        self.network_configuration = copy.deepcopy(service.network_configuration) or None
        self.resolved = resolved
        self.requested = requested
        self.created = _now()

    def targets(self) -> list[tuple[str, int | None]]:
        """(target group ARN, container port) per load balancer entry with a target group."""
        entries = [lb for lb in self.load_balancers if lb.get("targetGroupArn")]
        return [(r["targetGroupArn"], lb.get("containerPort")) for lb, r in zip(entries, self.resolved)]

    def view(self, backend: Any) -> dict[str, Any]:
        definition = backend.describe_task_definition(self.task_definition)
        view = {
            "serviceRevisionArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "taskDefinition": self.task_definition,
            "launchType": self.launch_type,
            "platformVersion": self.platform_version,
            "loadBalancers": self.load_balancers,
            "networkConfiguration": self.network_configuration,
            "containerImages": [
                {"containerName": c.get("name"), "image": c.get("image")}
                for c in definition.container_definitions
            ],
            "createdAt": _time(self.created),
            "resolvedConfiguration": {"loadBalancers": self.resolved},
        }
        return {k: v for k, v in view.items() if v is not None}


def _resolve(load_balancers: list[dict[str, Any]], production: set[str]) -> list[dict[str, Any]]:
    """Each load balancer entry's target group for a revision that is not in production
    yet: the alternate target group when the primary one serves production, else the
    primary one (for a first revision `production` is empty: the primary ones)."""
    resolved = []
    for lb in load_balancers:
        primary = lb.get("targetGroupArn")
        if not primary:
            continue
        advanced = lb.get("advancedConfiguration") or {}
        alternate = advanced.get("alternateTargetGroupArn")
        entry = {"targetGroupArn": alternate if alternate and primary in production else primary}
        if advanced.get("productionListenerRule"):
            entry["productionListenerRule"] = advanced["productionListenerRule"]
        resolved.append(entry)
    return resolved


# --- tasks ------------------------------------------------------------------------------------


_original_last_status = ecs_models.Task.last_status


def _last_status(self: Any) -> str:
    """A service's task is RUNNING until the service stops it; moto moves the others one
    state towards STOPPED each time they are described."""
    if getattr(self, "_lg_revision", None) is not None:
        return self._status
    return _original_last_status.fget(self)


def _task_ip(task: Any) -> str | None:
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


def _elbv2(backend: Any) -> Any:
    return elbv2_backends[backend.account_id][backend.region_name]


def _start_tasks(backend: Any, service: Any, revision: Revision, count: int) -> None:
    """Starts `count` RUNNING tasks of the revision and registers them with its target groups."""
    cluster = backend.clusters[service.cluster_name]
    definition = backend.describe_task_definition(revision.task_definition)
    for _ in range(count):
        task = ecs_models.Task(
            cluster,
            definition,
            None,
            None,
            backend=backend,
            group=f"service:{service.name}",
            launch_type=revision.launch_type or "",
            started_by=f"ecs-svc/{revision.number}",
            networking_configuration=revision.network_configuration,
            platform_version=revision.platform_version,
        )
        task._lg_revision = revision.arn
        task.created_at = task.started_at = _time(_now())
        for container in task.containers:
            container.last_status = "RUNNING"
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        ip = _task_ip(task)
        if ip is None:
            continue  # not awsvpc: no IP target to register
        for arn, port in revision.targets():
            if arn in _elbv2(backend).target_groups and port is not None:
                _elbv2(backend).register_targets(arn, [{"Id": ip, "Port": port}])


def _revision_tasks(backend: Any, service: Any, revision: Revision) -> list[Any]:
    """The revision's RUNNING tasks, oldest first."""
    return [
        t
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if getattr(t, "_lg_revision", None) == revision.arn and t.last_status == "RUNNING"
    ]


def _stop_task(backend: Any, revision: Revision, task: Any, reason: str) -> None:
    """Deregisters the task from the revision's target groups, stops it, deletes its ENI."""
    ip = _task_ip(task)
    for arn, _port in revision.targets():
        tg = _elbv2(backend).target_groups.get(arn)
        if ip is not None and tg is not None and ip in tg.targets:
            _elbv2(backend).deregister_targets(arn, [{"Id": ip}])
    stopped = _time(_now())
    task.last_status = task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = "ServiceSchedulerInitiated"
    task.stopping_at = task.stopped_at = task.execution_stopped_at = stopped
    for container in task.containers:
        container.last_status = "STOPPED"
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    for attachment in task.attachments:
        if attachment["type"] != "ElasticNetworkInterface":
            continue
        details = {d["name"]: d["value"] for d in attachment["details"]}
        # Its address stays taken in the subnet: no later task or instance reuses it,
        # which keeps IP-based assertions unambiguous.
        ec2.enis.pop(details["networkInterfaceId"], None)
        attachment["status"] = "DELETED"


def _scale(backend: Any, service: Any, revision: Revision, count: int) -> None:
    """Starts or stops (newest first) the revision's tasks until `count` run."""
    running = _revision_tasks(backend, service, revision)
    if len(running) < count:
        _start_tasks(backend, service, revision, count - len(running))
    for task in reversed(running[count:]):
        _stop_task(backend, revision, task, f"Scaling activity initiated by (deployment ecs-svc/{revision.number})")


def _sync_counts(backend: Any, service: Any) -> None:
    """The service's runningCount (and its cluster's) from the tasks that run."""
    running = sum(
        1
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if getattr(t, "_lg_revision", None) and t.group == f"service:{service.name}" and t.last_status == "RUNNING"
    )
    cluster = backend.clusters.get(service.cluster_name)
    if cluster is not None:
        cluster.running_tasks_count += running - service.running_count
        cluster.pending_tasks_count -= service.pending_count
    service.running_count, service.pending_count = running, 0


# --- lifecycle hooks ----------------------------------------------------------------------------


def _hook_details(value: Any) -> dict[str, Any]:
    """A hook's hookDetails: a JSON object, or one as a string (CloudFormation's form)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise InvalidParameterException("hookDetails must be a JSON object.")
    return value


def _lambda_hooks(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The configuration's AWS_LAMBDA lifecycle hooks, their defaults filled in."""
    hooks = []
    for hook in (config or {}).get("lifecycleHooks") or []:
        if hook.get("targetType", "AWS_LAMBDA") != "AWS_LAMBDA":
            continue
        timeout = hook.get("timeoutConfiguration") or {}
        hooks.append(
            {
                "hookTargetArn": hook.get("hookTargetArn"),
                "roleArn": hook.get("roleArn"),
                "lifecycleStages": list(hook.get("lifecycleStages") or []),
                "hookDetails": _hook_details(hook.get("hookDetails")),
                "timeoutInMinutes": int(timeout.get("timeoutInMinutes") or DEFAULT_TIMEOUT_MINUTES),
                "timeoutAction": timeout.get("action") or "ROLLBACK",
            }
        )
    return hooks


class Execution:
    """One hook at one stage of one deployment, invoked until it resolves."""

    def __init__(self, deployment: Deployment, hook: dict[str, Any], stage: str) -> None:
        self.id = str(uuid.uuid4())
        self.deployment = deployment
        self.hook = hook
        self.stage = stage
        self.hook_details = copy.deepcopy(hook["hookDetails"])
        self.started = _now()
        self.status = "IN_PROGRESS"
        self.due_at: float | None = self.started  # next invocation; None while one is out

    @property
    def expires_at(self) -> float:
        return self.started + self.hook["timeoutInMinutes"] * settings["ecs_hook_minute_seconds"]

    @property
    def awaits_answer(self) -> bool:
        """An invocation is out and nothing has resolved the hook since."""
        return self.status == "IN_PROGRESS" and self.due_at is None and self.deployment.status == "IN_PROGRESS"

    def payload(self) -> dict[str, Any]:
        """The event Lambda receives (lambda-lifecycle-hooks.html, "payload structure")."""
        deployment = self.deployment
        green, blue = deployment.target.arn, deployment.source.arn
        test: dict[str, int] = {}
        production: dict[str, int] = {}
        # The weights as documented per stage; every other stage sends two empty maps.
        if self.stage == "TEST_TRAFFIC_SHIFT":
            test = {green: 100, blue: 0}
        elif self.stage == "PRE_PRODUCTION_TRAFFIC_SHIFT":
            production = {green: 0, blue: 100}
        elif self.stage == "PRODUCTION_TRAFFIC_SHIFT":
            production = {green: 100, blue: 0}
        payload: dict[str, Any] = {
            "executionId": self.id,
            "lifecycleStage": self.stage,
            "resourceArn": deployment.arn,
            "executionDetails": {
                "serviceArn": deployment.service.arn,
                "targetServiceRevisionArn": green,
                "testTrafficWeights": test,
                "productionTrafficWeights": production,
            },
        }
        if self.hook_details:
            payload["hookDetails"] = copy.deepcopy(self.hook_details)
        return payload

    def view(self) -> dict[str, Any]:
        return {
            "hookId": self.id,
            "targetType": "AWS_LAMBDA",
            "targetArn": self.hook["hookTargetArn"],
            "status": self.status,
            "expiresAt": _time(self.expires_at),
            "timeoutAction": self.hook["timeoutAction"],
        }


# --- service deployments ------------------------------------------------------------------------


def _deployment_id() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=21))


class Deployment:
    """One service deployment, from `source` (None for the service's creation) to `target`."""

    def __init__(self, backend: Any, service: Any, source: Revision | None, target: Revision) -> None:
        self.backend = backend
        self.service = service
        self.arn = _arn(backend, f"service-deployment/{service.cluster_name}/{service.name}/{_deployment_id()}")
        self.source = source
        self.target = target
        self.configuration = copy.deepcopy(service.deployment_configuration)
        self.hooks = _lambda_hooks(self.configuration)
        self.status = "IN_PROGRESS"
        self.status_reason: str | None = None
        self.stage: str | None = None
        self.created = self.updated = _now()
        self.finished: float | None = None
        self.stopped: float | None = None
        self.test_weight = 0
        self.production_weight = 0
        self.executions: list[Execution] = []
        self.rollback: dict[str, Any] | None = None

    def touch(self) -> None:
        self.updated = _now()

    def summary(self, revision: Revision, test: int, production: int) -> dict[str, Any]:
        return {
            "arn": revision.arn,
            "requestedTaskCount": revision.requested,
            "runningTaskCount": len(_revision_tasks(self.backend, self.service, revision)),
            "pendingTaskCount": 0,
            "requestedTestTrafficWeight": float(test),
            "requestedProductionTrafficWeight": float(production),
        }

    def view(self) -> dict[str, Any]:
        view = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "createdAt": _time(self.created),
            "startedAt": _time(self.created),
            "updatedAt": _time(self.updated),
            "finishedAt": _time(self.finished),
            "stoppedAt": _time(self.stopped),
            "sourceServiceRevisions": (
                [self.summary(self.source, 0, 100 - self.production_weight)] if self.source else []
            ),
            "targetServiceRevision": self.summary(self.target, self.test_weight, self.production_weight),
            "status": self.status,
            "statusReason": self.status_reason,
            "lifecycleStage": self.stage,
            "lifecycleHookDetails": [e.view() for e in self.executions],
            "deploymentConfiguration": self.configuration,
            "rollback": self.rollback,
        }
        return {k: v for k, v in view.items() if v is not None}

    def brief(self) -> dict[str, Any]:
        brief = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "startedAt": _time(self.created),
            "createdAt": _time(self.created),
            "finishedAt": _time(self.finished),
            "targetServiceRevisionArn": self.target.arn,
            "status": self.status,
            "statusReason": self.status_reason,
        }
        return {k: v for k, v in brief.items() if v is not None}


def _enter(deployment: Deployment, stage: str) -> None:
    """Does what the stage does, then starts an execution of each of its hooks."""
    deployment.stage = stage
    deployment.touch()
    backend, service = deployment.backend, deployment.service
    if stage == "SCALE_UP":
        _start_tasks(backend, service, deployment.target, deployment.target.requested)
    elif stage == "TEST_TRAFFIC_SHIFT":
        deployment.test_weight = 100
    elif stage == "PRODUCTION_TRAFFIC_SHIFT":
        deployment.production_weight = 100
    elif stage == "CLEAN_UP":
        for task in _revision_tasks(backend, service, deployment.source):
            _stop_task(backend, deployment.source, task,
                       f"Scaling activity initiated by (deployment ecs-svc/{deployment.source.number})")
        service._lg_revision = deployment.target
    for hook in deployment.hooks:
        if stage in hook["lifecycleStages"]:
            deployment.executions.append(Execution(deployment, hook, stage))
    _sync_counts(backend, service)


def _advance(deployment: Deployment) -> None:
    """Moves the deployment through every stage with nothing left to wait for."""
    while deployment.status == "IN_PROGRESS":
        if any(e.stage == deployment.stage and e.status == "IN_PROGRESS" for e in deployment.executions):
            return
        if deployment.stage == STAGES[-1]:
            deployment.status = "SUCCESSFUL"
            deployment.finished = _now()
            deployment.touch()
            # desiredCount changes made during the deployment apply now.
            _scale(deployment.backend, deployment.service, deployment.target, deployment.service.desired_count)
            _sync_counts(deployment.backend, deployment.service)
            return
        stage = STAGES[0] if deployment.stage is None else STAGES[STAGES.index(deployment.stage) + 1]
        _enter(deployment, stage)


def _roll_back(deployment: Deployment, reason: str) -> None:
    """Starts the rollback: traffic back to the source at once, the green tasks stop at
    the next tick."""
    now = _now()
    deployment.status = "ROLLBACK_IN_PROGRESS"
    deployment.status_reason = reason
    deployment.rollback = {"reason": reason, "startedAt": _time(now), "serviceRevisionArn": deployment.source.arn}
    deployment.test_weight = deployment.production_weight = 0
    deployment.service.task_definition = deployment.source.task_definition
    deployment.touch()


def _undo(deployment: Deployment, status: str) -> None:
    """Stops and deregisters the target's tasks; the deployment ends with `status`."""
    backend, service = deployment.backend, deployment.service
    for task in _revision_tasks(backend, service, deployment.target):
        _stop_task(backend, deployment.target, task,
                   f"Scaling activity initiated by (deployment ecs-svc/{deployment.target.number})")
    deployment.test_weight = deployment.production_weight = 0
    deployment.status = status
    deployment.finished = _now()
    deployment.touch()
    _scale(backend, service, _current(service), service.desired_count)
    _sync_counts(backend, service)


def _start_deployment(backend: Any, service: Any) -> Deployment:
    """A blue/green deployment from the service's current revision to a new one."""
    ongoing = _ongoing(service)
    source = _current(service)
    production = {r["targetGroupArn"] for r in source.resolved}
    target = Revision(backend, service, _resolve(service.load_balancers, production), service.desired_count)
    deployment = Deployment(backend, service, source, target)
    if ongoing is not None:
        if ongoing.status == "IN_PROGRESS":
            ongoing.status_reason = f"stopped: service deployment {deployment.arn} started"
            ongoing.stopped = _now()
            _undo(ongoing, "STOPPED")
        else:
            _undo(ongoing, "ROLLBACK_SUCCESSFUL")
    _revisions(backend)[target.arn] = target
    _deployments(backend)[deployment.arn] = deployment
    service._lg_deployment = deployment
    _advance(deployment)
    return deployment


def _first_revision(backend: Any, service: Any) -> None:
    """The service's first revision, its (finished) deployment, and its tasks."""
    revision = Revision(backend, service, _resolve(service.load_balancers, set()), service.desired_count)
    deployment = Deployment(backend, service, None, revision)
    deployment.status = "SUCCESSFUL"
    deployment.finished = deployment.created
    deployment.production_weight = 100
    _revisions(backend)[revision.arn] = revision
    _deployments(backend)[deployment.arn] = deployment
    service._lg_revision = revision
    service._lg_deployment = deployment
    _start_tasks(backend, service, revision, service.desired_count)
    _sync_counts(backend, service)


def _answer(execution: Execution, response: Any, error: bool) -> str:
    """Applies a function's output to its execution as ECS does; returns the outcome."""
    deployment = execution.deployment
    arn, stage = execution.hook["hookTargetArn"], execution.stage
    invalid = None
    if error:
        execution.status = "FAILED"
        _roll_back(deployment, f"lifecycle hook {arn} failed (function error) at {stage}")
        return "ERROR"
    if not isinstance(response, dict):
        invalid = "the output is not a JSON object"
    elif response.get("hookStatus") == "SUCCEEDED":
        execution.status = "SUCCEEDED"
        deployment.touch()
        _advance(deployment)
        return "SUCCEEDED"
    elif response.get("hookStatus") == "FAILED":
        execution.status = "FAILED"
        _roll_back(deployment, f"lifecycle hook {arn} returned FAILED at {stage}")
        return "FAILED"
    elif response.get("hookStatus") == "IN_PROGRESS":
        delay = response.get("callBackDelay", DEFAULT_CALLBACK_DELAY)
        details = response.get("hookDetails")
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            invalid = f"callBackDelay {json.dumps(delay)} is not an integer >= 0"
        elif details is not None and not isinstance(details, dict):
            invalid = "hookDetails is not a JSON object"
        else:
            execution.hook_details.update(details or {})
            execution.due_at = _now() + delay
            deployment.touch()
            return "IN_PROGRESS"
    else:
        invalid = f"hookStatus {json.dumps(response.get('hookStatus'))} is not SUCCEEDED, FAILED or IN_PROGRESS"
    execution.status = "FAILED"
    _roll_back(deployment, f"lifecycle hook {arn} returned an invalid response at {stage}: {invalid}")
    return "INVALID"


def _all_deployments() -> list[Deployment]:
    """Every service deployment, in any account and region."""
    return [
        d
        for regions in list(ecs_models.ecs_backends.values())
        for backend in list(regions.values())
        for d in list(_deployments(backend).values())
    ]


def _tick() -> None:
    """Applies hook timeouts and ends rollbacks."""
    now = _now()
    with _lock:
        for deployment in _all_deployments():
            if deployment.status == "ROLLBACK_IN_PROGRESS":
                _undo(deployment, "ROLLBACK_SUCCESSFUL")
                continue
            if deployment.status != "IN_PROGRESS":
                continue
            for execution in list(deployment.executions):
                if execution.status != "IN_PROGRESS" or now < execution.expires_at:
                    continue
                execution.status = "TIMED_OUT"
                deployment.touch()
                if execution.hook["timeoutAction"] == "CONTINUE":
                    _advance(deployment)
                else:
                    _roll_back(deployment, f"lifecycle hook {execution.hook['hookTargetArn']} "
                                           f"timed out at {execution.stage}")
                if deployment.status != "IN_PROGRESS":
                    break


def _loop() -> None:
    while True:
        try:
            _tick()
        except Exception as err:  # noqa: BLE001 - keep deployments moving whatever one does
            print(f"ECS deployments: {err!r}", flush=True)
        time.sleep(TICK_SECONDS)


# --- the ECS API ----------------------------------------------------------------------------------

_original_create_service = ecs_responses.EC2ContainerServiceResponse.create_service
_original_update_service = ecs_responses.EC2ContainerServiceResponse.update_service
_original_list_tasks = ecs_models.EC2ContainerServiceBackend.list_tasks


def _managed(service: Any) -> bool:
    """Whether ECS itself runs the service's tasks (not CodeDeploy or an external controller)."""
    return (
        service.deployment_controller.get("type", "ECS") == "ECS"
        and service.scheduling_strategy == "REPLICA"
        and bool(service.task_definition)
    )


def create_service(self: Any) -> ActionResult:
    backend = self.ecs_backend
    configuration = self._get_param("deploymentConfiguration")
    _lambda_hooks(configuration)  # refuses a bad hookDetails before anything is created
    definition_name = self._get_param("taskDefinition")
    if definition_name and not self._get_param("networkConfiguration"):
        if backend.describe_task_definition(definition_name).network_mode == "awsvpc":
            raise InvalidParameterException(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified."
            )
    with _lock:
        answer = _original_create_service(self)
        service = backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
        service.deployment_configuration = configuration
        if _managed(service):
            _first_revision(backend, service)
    return answer


def update_service(self: Any) -> ActionResult:
    backend = self.ecs_backend
    _lambda_hooks(self._get_param("deploymentConfiguration"))
    with _lock:
        service = backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
        logged = (service.running_count, service.pending_count)
        answer = _original_update_service(self)
        if self._get_param("desiredCount") is None:
            # moto takes the service's tasks off its cluster's counts and puts them back
            # only with a new desiredCount.
            cluster = backend.clusters[service.cluster_name]
            cluster.running_tasks_count += logged[0]
            cluster.pending_tasks_count += logged[1]
        definition_name = self._get_param("taskDefinition")
        if definition_name:
            # moto keeps the name as given (family, family:revision); AWS answers the ARN.
            service.task_definition = backend.describe_task_definition(definition_name).arn
        if _current(service) is None:
            return answer
        ongoing = _ongoing(service)
        latest = ongoing.target if ongoing is not None else _current(service)
        strategy = (service.deployment_configuration or {}).get("strategy")
        changed = bool(definition_name) and service.task_definition != latest.task_definition
        if strategy == "BLUE_GREEN" and (changed or self._get_param("forceNewDeployment")):
            _start_deployment(backend, service)
        elif ongoing is None:
            _scale(backend, service, _current(service), service.desired_count)
            _sync_counts(backend, service)
    return answer


def _list_tasks(
    self: Any,
    cluster_str: str | None = None,
    container_instance: str | None = None,
    family: str | None = None,
    started_by: str | None = None,
    service_name: str | None = None,
    desiredStatus: str | None = None,  # noqa: N803 - moto's name
) -> list[Any]:
    """ListTasks with `serviceName` (moto ignores it) and AWS's default desired status."""
    tasks = _original_list_tasks(self, cluster_str, container_instance, family, started_by, None,
                                 desiredStatus or "RUNNING")
    if service_name:
        group = f"service:{service_name.split('/')[-1]}"
        tasks = [t for t in tasks if t.group == group]
    return tasks


def _arns_param(self: Any, name: str) -> list[str]:
    arns = self._get_param(name) or []
    if not arns or len(arns) > MAX_ARNS:
        raise InvalidParameterException(f"{name} must contain between 1 and {MAX_ARNS} ARNs.")
    return arns


def describe_service_deployments(self: Any) -> ActionResult:
    arns = _arns_param(self, "serviceDeploymentArns")
    with _lock:
        known = _deployments(self.ecs_backend)
        return ActionResult(
            {
                "serviceDeployments": [known[a].view() for a in arns if a in known],
                "failures": [{"arn": a, "reason": "MISSING"} for a in arns if a not in known],
            }
        )


def describe_service_revisions(self: Any) -> ActionResult:
    arns = _arns_param(self, "serviceRevisionArns")
    backend = self.ecs_backend
    with _lock:
        known = _revisions(backend)
        return ActionResult(
            {
                "serviceRevisions": [known[a].view(backend) for a in arns if a in known],
                "failures": [{"arn": a, "reason": "MISSING"} for a in arns if a not in known],
            }
        )


def _epoch(value: Any) -> float | None:
    """A request timestamp (epoch seconds, or a datetime once parsed) in epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return float(value)


def list_service_deployments(self: Any) -> ActionResult:
    backend = self.ecs_backend
    service = backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
    statuses = self._get_param("status") or []
    created = self._get_param("createdAt") or {}
    before, after = _epoch(created.get("before")), _epoch(created.get("after"))
    max_results = int(self._get_param("maxResults") or 20)
    if not 1 <= max_results <= 100:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    start = int(self._get_param("nextToken") or 0)
    with _lock:
        listed = [
            d
            for d in sorted(_deployments(backend).values(), key=lambda d: d.created, reverse=True)
            if d.service is service
            and (not statuses or d.status in statuses)
            and (before is None or d.created <= before)
            and (after is None or d.created >= after)
        ]
        result: dict[str, Any] = {"serviceDeployments": [d.brief() for d in listed[start : start + max_results]]}
    if start + max_results < len(listed):
        result["nextToken"] = str(start + max_results)
    return ActionResult(result)


def _current_service_deployment(service: Any) -> str | None:
    with _lock:
        deployment = getattr(service, "_lg_deployment", None)
        return deployment.arn if deployment is not None else None


def _current_service_revisions(service: Any) -> list[dict[str, Any]] | None:
    with _lock:
        current = _current(service)
        if current is None:
            return None
        backend = ecs_models.ecs_backends[service._account_id][service.region_name]
        revisions = [(current, service.desired_count)]
        ongoing = _ongoing(service)
        if ongoing is not None:
            revisions.append((ongoing.target, ongoing.target.requested))
        return [
            {
                "arn": revision.arn,
                "requestedTaskCount": requested,
                "runningTaskCount": len(_revision_tasks(backend, service, revision)),
                "pendingTaskCount": 0,
            }
            for revision, requested in revisions
        ]


# --- the control surface ----------------------------------------------------------------------


def _hand_out() -> list[dict[str, Any]]:
    """The due invocations, each handed out once."""
    now = _now()
    invocations = []
    for deployment in _all_deployments():
        if deployment.status != "IN_PROGRESS":
            continue
        for execution in deployment.executions:
            if execution.status != "IN_PROGRESS" or execution.due_at is None or execution.due_at > now:
                continue
            execution.due_at = None
            invocations.append(
                {
                    "executionId": execution.id,
                    "hookTargetArn": execution.hook["hookTargetArn"],
                    "roleArn": execution.hook["roleArn"],
                    "payload": execution.payload(),
                }
            )
    return invocations


def _hook_response(body: dict[str, Any]) -> tuple[str, Any]:
    """`POST /_launch_gate/ecs/hook-response`: one function's output; (status, answer)."""
    execution_id = body.get("executionId")
    error = body.get("error", False)
    if not isinstance(execution_id, str) or not isinstance(error, bool):
        return "400 Bad Request", {"error": "executionId must be a string and error a boolean"}
    execution = next(
        (e for d in _all_deployments() for e in d.executions if e.id == execution_id), None
    )
    if execution is None:
        return "404 Not Found", {"error": f"no hook execution {execution_id}"}
    record = {
        "executionId": execution_id,
        "serviceDeploymentArn": execution.deployment.arn,
        "hookTargetArn": execution.hook["hookTargetArn"],
        "lifecycleStage": execution.stage,
        "receivedAt": _iso(_now()),
        "response": body.get("response"),
        "error": error,
    }
    if not execution.awaits_answer:
        _hook_responses.append({**record, "accepted": False, "outcome": None})
        return "409 Conflict", {"error": f"hook execution {execution_id} awaits no answer "
                                         f"(hook {execution.status}, deployment {execution.deployment.status})"}
    outcome = _answer(execution, body.get("response"), error)
    _hook_responses.append({**record, "accepted": True, "outcome": outcome})
    return "200 OK", {
        "executionId": execution_id,
        "outcome": outcome,
        "hookStatus": execution.status,
        "deploymentStatus": execution.deployment.status,
    }


def control(method: str, path: str, body: dict[str, Any]) -> tuple[str, Any] | None:
    """Answers a `/_launch_gate/ecs/...` control request: (status, JSON answer), or None
    for a path this module does not serve."""
    with _lock:
        if path == "/_launch_gate/ecs/hook-invocations" and method == "GET":
            return "200 OK", _hand_out()
        if path == "/_launch_gate/ecs/hook-response" and method == "POST":
            return _hook_response(body)
        if path == "/_launch_gate/ecs/hook-responses" and method == "GET":
            return "200 OK", list(_hook_responses)
        if path == "/_launch_gate/ecs/settings" and method == "GET":
            return "200 OK", dict(settings)
        if path == "/_launch_gate/ecs/settings" and method == "POST":
            unknown = set(body) - set(settings)
            if unknown:
                return "400 Bad Request", {"error": f"unknown settings: {sorted(unknown)}"}
            try:
                configure(body.get("ecs_hook_minute_seconds"))
            except (TypeError, ValueError) as err:
                return "400 Bad Request", {"error": str(err)}
            return "200 OK", dict(settings)
    return None


_ticker: threading.Thread | None = None


def install() -> None:
    """Patches moto's ECS and starts the deployments' timer thread. Idempotent."""
    global _ticker
    # moto sets an ENI's private DNS name only in a VPC with EnableDnsHostnames, and its
    # awsvpc tasks read it unconditionally.
    NetworkInterface.private_dns_name = None
    ecs_models.Task.__init__ = _task_init
    ecs_models.Task.last_status = property(_last_status, _original_last_status.fset)
    ecs_models.EC2ContainerServiceBackend.list_tasks = _list_tasks
    service = ecs_models.Service
    service.deployment_configuration = None
    service.current_service_deployment = property(_current_service_deployment)
    service.current_service_revisions = property(_current_service_revisions)
    cls = ecs_responses.EC2ContainerServiceResponse
    cls.create_service = create_service
    cls.update_service = update_service
    cls.describe_service_deployments = describe_service_deployments
    cls.list_service_deployments = list_service_deployments
    cls.describe_service_revisions = describe_service_revisions
    if _ticker is None:
        _ticker = threading.Thread(target=_loop, daemon=True, name="ecs-deployments")
        _ticker.start()
