"""ECS native blue/green service deployments with Lambda lifecycle hooks, for launch-gate's
AWS emulator.

Stock moto (5.2) keeps no `deploymentConfiguration` from `CreateService`, runs no task for a
service, answers a service's `deployments` with one made-up entry unrelated to any task,
and has no service revisions or service deployments. This module adds them, as AWS
documents them (docs.aws.amazon.com/AmazonECS/latest/developerguide/
deployment-type-blue-green.html, blue-green-deployment-how-it-works.html,
lambda-lifecycle-hooks.html, service-deployment.html; the API reference's Service,
Deployment, ServiceDeployment, ServiceRevision, DeploymentLifecycleHook). The tasks
themselves (their addresses, container instances, host ports and target registrations,
`ListTasks`) are ecs_tasks.py's:

* services keep their `deploymentConfiguration` as given, `lifecycleHooks[]` included
  (`hookDetails` is a JSON document in the API model: an object, or a JSON string as
  CloudFormation gives it, is answered as it came); `DescribeServices` answers it with
  `currentServiceDeployment` (an ARN) and `currentServiceRevisions` ({arn,
  requestedTaskCount, runningTaskCount, pendingTaskCount}: the current revision, and the
  target revision while a deployment is in progress);
* service revisions (`arn:aws:ecs:R:A:service-revision/<cluster>/<service>/<19 digits>`):
  `CreateService` (deployment controller ECS, REPLICA, with a task definition) makes the
  first one, records a service deployment for it (SUCCESSFUL at once, no hooks) and starts
  `desiredCount` tasks of it, `group` "service:<name>", `startedBy` the revision's
  deployment ID (see `started_by` below). `DescribeServiceRevisions` answers the revision
  with the service's `loadBalancers` (with `advancedConfiguration`) and its
  `resolvedConfiguration.loadBalancers`: [{targetGroupArn, productionListenerRule}], the
  target group that serves (or will serve) the revision's production traffic, which is
  where its tasks are registered (see `resolved_configuration` below);
* `DescribeServices`' `deployments[]` (the Deployment shape; a task a service starts
  carries its deployment's ID in `startedBy`, API_Task.html): one entry per revision with
  tasks running or starting, `id` exactly its tasks' `startedBy`, `status` PRIMARY for
  the newest (a deployment's target while it is IN_PROGRESS, the current revision
  otherwise and again during a rollback) and ACTIVE for the other, `taskDefinition`,
  `desiredCount`, `pendingCount`, `runningCount`, `failedTasks` 0, `createdAt`,
  `updatedAt`, `launchType`, `platformVersion` and `networkConfiguration` as the revision
  has them, `rolloutState` IN_PROGRESS (a deployment's target; the source during a
  rollback), FAILED (the target being rolled back) or else COMPLETED once its tasks run.
  An entry goes when its revision's tasks have all stopped after its deployment ended
  (CLEAN_UP, a rollback, a superseding deployment);
* `UpdateService` of a service whose `deploymentConfiguration.strategy` is BLUE_GREEN, with
  a task definition other than its latest revision's or `forceNewDeployment` (then the
  same task definition: blue and green tasks differ only in `startedBy`), starts a
  service deployment (`arn:aws:ecs:R:A:service-deployment/<cluster>/<service>/<21
  alphanumerics>`) to a new target revision whose green target groups are, per load
  balancer entry, whichever of `targetGroupArn` / `advancedConfiguration.
  alternateTargetGroupArn` does not serve production now (so successive successful
  deployments alternate between the two). It walks PRE_SCALE_UP, SCALE_UP (the green
  tasks start and are registered with the green target groups; the deployment goes on
  once all of them are RUNNING, since AWS describes POST_SCALE_UP as the stage where the
  green revision has started), POST_SCALE_UP, TEST_TRAFFIC_SHIFT (test weight 100),
  POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT
  (production weight 100), POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (no wait) and
  CLEAN_UP (the blue tasks stop and are deregistered; the target becomes the current
  revision, its green target groups production), then SUCCESSFUL. A stage without hooks
  passes at once. Other services, and other updates, keep moto's behaviour, but a
  service whose `desiredCount` changes outside a deployment has its current revision's
  tasks started or stopped to match;
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
  lists every execution so far, its `hookId` the `executionId` (see
  `lambda_hooks_in_details` below);
* a rollback: ROLLBACK_IN_PROGRESS at once, the target's traffic weights back to 0 (so
  production stays on, or returns to, the blue target groups). AWS documents that on a
  rollback ECS runs the hooks of the PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT
  stages (lambda-lifecycle-hooks.html), and no more: not in which order, with what
  payload, whether the rollback waits for them, nor what their answers do. Our choices: every AWS_LAMBDA hook configured for those stages is invoked again,
  whether or not the deployment had reached them, as a new execution (new `executionId`,
  the hook's configured `hookDetails`), PRODUCTION_TRAFFIC_SHIFT's first, then
  TEST_TRAFFIC_SHIFT's; the deployment's `lifecycleStage` is the stage whose hooks run;
  the payload names the deployment's target revision, its weights moving the traffic
  back (`productionTrafficWeights` {target: 0, source: 100} at PRODUCTION_TRAFFIC_SHIFT,
  `testTrafficWeights` {target: 0, source: 100} at TEST_TRAFFIC_SHIFT, the other map
  empty). They are handed out and answered like any other invocation (an answer is
  accepted while the deployment is ROLLBACK_IN_PROGRESS) and the rollback waits for each
  stage's hooks to resolve: IN_PROGRESS invokes again after `callBackDelay`; SUCCEEDED,
  FAILED, an invalid output or a function error end the execution (SUCCEEDED or FAILED)
  and the rollback goes on, as a rollback is not rolled back; a timeout ends it
  TIMED_OUT, whatever its `action`, and the rollback goes on (the API's ROLLBACK_FAILED
  status is never used). Once the hooks have resolved (at once without any), at the next
  tick (~0.2 s) the green tasks stop and are deregistered, and ROLLBACK_SUCCESSFUL.
  `rollback` {reason, startedAt, serviceRevisionArn: the source revision} and
  `statusReason` say why;
* a deployment that an `UpdateService` supersedes while in progress is undone the same
  way at once, without hooks, and ends STOPPED; one superseded during its rollback ends
  ROLLBACK_SUCCESSFUL at once (AWS documents neither case);
* `DescribeServiceDeployments` (unknown ARNs are failures with reason MISSING),
  `ListServiceDeployments` (newest first; `status`, `createdAt`, `maxResults`,
  `nextToken`) and `DescribeServiceRevisions`.

Settings, process-wide, read when they apply (so they may change between deployments);
where AWS is silent both plausible behaviours are offered:

* `ecs_hook_minute_seconds` (number > 0, default 60): how many seconds a "minute" of a
  hook's `timeoutInMinutes` lasts;
* `lambda_hooks_in_details` (bool, default true): whether `DescribeServiceDeployments`'
  `lifecycleHookDetails` lists the executions of AWS_LAMBDA hooks (true) or is empty
  (false). AWS documents the field (hookId, targetType AWS_LAMBDA or PAUSE, targetArn the
  function's ARN for a Lambda hook, status, ...) beside the PAUSE hooks that
  `ContinueServiceDeployment` resumes (deployment-lifecycle-hooks.html) and does not say
  whether Lambda hooks' executions appear in it. PAUSE hooks are not emulated;
* `resolved_configuration` ("always" | "active_only", default "always"): whether
  `DescribeServiceRevisions` answers `resolvedConfiguration` for every revision, or only
  for the service's current (production) revision. The API reference calls it the
  resources the revision uses, such as which target groups serve traffic, and does not
  say when it is present; AWS's sample lifecycle hook is said to suggest that it is there
  only for an active revision (the sample's code is not among the sources checked);
* `started_by` ("revision" | "independent", default "revision"): what a service task's
  `startedBy` (and its `deployments[]` entry's `id`) is: "ecs-svc/" and the revision
  ARN's number, or "ecs-svc/" and 19 random digits unrelated to any ARN. AWS documents
  `startedBy` as the ID of the service deployment that started the task, and a
  Deployment's `id` as its ID, and says nothing of how either relates to a service
  revision's ARN;
* `new_tasks_stay_pending` (bool, default false): tasks started while it is on (a
  service's creation, a scale-out, a deployment's SCALE_UP) stay PENDING (desired RUNNING)
  and are registered with no target group; they count in `pendingCount` and
  `pendingTaskCount`, not as running, and a deployment waits at SCALE_UP for them for
  ever (the circuit breaker is not emulated) unless superseded. It plays a redeploy whose
  green tasks never start (a crashing image, say). Turning it off changes no task already
  started;
* `scale_up_waits_for_running` (bool, default true): whether a deployment leaves
  SCALE_UP only once every green task is RUNNING (true), or as soon as they were started,
  running or still PENDING (false). AWS describes POST_SCALE_UP as the stage after the
  green tasks started, and does not say whether ECS waits for them to run.

Not emulated: listener rules are not rewritten (the weights are the deployment's record
only), no hook runs on a service's creation, RECONCILE_SERVICE, linear and canary
strategies, bake time, circuit breaker and alarms, INACTIVE entries in `deployments[]`,
and the scheduler's answer to `StopTask` or `DeleteService` (a service's task stopped that
way is not replaced nor deregistered; a deleted service's tasks keep running).

Control surface (routed by launch_gate_emulator.py, `control(method, path, body)`):
`GET /_launch_gate/ecs/hook-invocations` hands out the due invocations, rollbacks'
included: [{"executionId", "hookTargetArn", "roleArn", "payload"}], each once; `POST
/_launch_gate/ecs/hook-response` with {"executionId", "response": <the function's
output>, "error": <bool>} answers one (404 unknown execution, 409 when no invocation of
it awaits an answer, 400 malformed); `GET /_launch_gate/ecs/hook-responses` lists every
answer received; `GET /_launch_gate/ecs/settings` answers the six settings above
({"ecs_hook_minute_seconds": 60.0, "lambda_hooks_in_details": true,
"resolved_configuration": "always", "started_by": "revision", "new_tasks_stay_pending":
false, "scale_up_waits_for_running": true} by default) and `POST
/_launch_gate/ecs/settings` with any of them changes those given and answers all six (400, changing none, for an unknown setting or a value out of
its range). Tests: `test_ecs_deployments.py`.
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
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.utilities.utils import get_partition

import ecs_tasks

# One lock for every change to services, tasks, revisions and deployments: the server is
# threaded and the timer thread moves deployments on concurrently with API calls.
_lock = threading.RLock()
settings: dict[str, Any] = {
    "ecs_hook_minute_seconds": 60.0,
    "lambda_hooks_in_details": True,
    "resolved_configuration": "always",
    "started_by": "revision",
    "new_tasks_stay_pending": False,
    "scale_up_waits_for_running": True,
}
FLAGS = ("lambda_hooks_in_details", "new_tasks_stay_pending", "scale_up_waits_for_running")
CHOICES = {"resolved_configuration": ("always", "active_only"), "started_by": ("revision", "independent")}

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
# The stages whose hooks a rollback runs again, in the order it runs them.
ROLLBACK_STAGES = ("PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT")
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


def configure(changes: dict[str, Any]) -> None:
    """Changes settings: all of `changes` or, when one is unknown or invalid (ValueError),
    none."""
    unknown = set(changes) - set(settings)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    changed = dict(settings)
    for name, value in changes.items():
        if name == "ecs_hook_minute_seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError("ecs_hook_minute_seconds must be a number > 0")
            value = float(value)
        elif name in FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        elif value not in CHOICES[name]:
            raise ValueError(f"{name} must be one of: {', '.join(CHOICES[name])}")
        changed[name] = value
    settings.update(changed)


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
        self.service = service
        # What its tasks carry in startedBy, and its entry's id in the service's deployments.
        digits = self.number
        while settings["started_by"] == "independent" and digits == self.number:
            digits = str(random.randrange(10**18, 10**19))
        self.deployment_id = f"ecs-svc/{digits}"
        self.service_arn = service.arn
        self.cluster_arn = service.cluster_arn
        self.task_definition = service.task_definition
        self.launch_type = service.launch_type
        self.platform_version = service.platform_version
        self.load_balancers = copy.deepcopy(service.load_balancers)
        self.network_configuration = copy.deepcopy(service.network_configuration) or None
        self.resolved = resolved
        self.requested = requested
        self.created = self.updated = _now()
        self.unplaced = False  # a task of it could not be placed: placement is tried again

    def targets(self) -> list[tuple[str, str | None, int | None]]:
        """(target group ARN, container name, container port) per load balancer entry with
        a target group."""
        entries = [lb for lb in self.load_balancers if lb.get("targetGroupArn")]
        return [
            (r["targetGroupArn"], lb.get("containerName"), lb.get("containerPort"))
            for lb, r in zip(entries, self.resolved)
        ]

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
        if settings["resolved_configuration"] == "active_only" and _current(self.service) is not self:
            del view["resolvedConfiguration"]
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


# --- tasks (ecs_tasks.py) ------------------------------------------------------------------------


def _scale(backend: Any, service: Any, revision: Revision, count: int) -> None:
    """Starts or stops the revision's tasks until `count` run or are starting; new tasks
    stay PENDING while `new_tasks_stay_pending` is on."""
    ecs_tasks.scale(backend, service, revision, count, not settings["new_tasks_stay_pending"])


def _stop_all(backend: Any, service: Any, revision: Revision) -> None:
    """Stops the revision's tasks (and deregisters them)."""
    for task in ecs_tasks.of_revision(backend, service, revision, ecs_tasks.LIVE):
        ecs_tasks.stop(backend, task, f"Scaling activity initiated by (deployment {revision.deployment_id})")
    revision.updated = _now()


def _counts(backend: Any, service: Any, revision: Revision) -> tuple[int, int]:
    """The revision's (RUNNING, PENDING) task counts."""
    statuses = [t.last_status for t in ecs_tasks.of_revision(backend, service, revision, ecs_tasks.LIVE)]
    return statuses.count("RUNNING"), statuses.count("PENDING")


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
    """One hook at one stage of one deployment (or of its rollback), invoked until it
    resolves."""

    def __init__(self, deployment: Deployment, hook: dict[str, Any], stage: str, rollback: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.deployment = deployment
        self.hook = hook
        self.stage = stage
        self.rollback = rollback
        self.hook_details = copy.deepcopy(hook["hookDetails"])
        self.started = _now()
        self.status = "IN_PROGRESS"
        self.due_at: float | None = self.started  # next invocation; None while one is out

    @property
    def expires_at(self) -> float:
        return self.started + self.hook["timeoutInMinutes"] * settings["ecs_hook_minute_seconds"]

    @property
    def current(self) -> bool:
        """Unresolved, and of the deployment's present course: forward while it is
        IN_PROGRESS, its rollback's while it is ROLLBACK_IN_PROGRESS."""
        course = "ROLLBACK_IN_PROGRESS" if self.rollback else "IN_PROGRESS"
        return self.status == "IN_PROGRESS" and self.deployment.status == course

    @property
    def awaits_answer(self) -> bool:
        """An invocation is out and nothing has resolved the hook since."""
        return self.current and self.due_at is None

    def payload(self) -> dict[str, Any]:
        """The event Lambda receives (lambda-lifecycle-hooks.html, "payload structure")."""
        deployment = self.deployment
        green, blue = deployment.target.arn, deployment.source.arn
        test: dict[str, int] = {}
        production: dict[str, int] = {}
        # The weights as documented per stage; every other stage sends two empty maps. In
        # a rollback the traffic goes back to the source revision (our choice).
        if self.rollback and self.stage == "TEST_TRAFFIC_SHIFT":
            test = {green: 0, blue: 100}
        elif self.rollback:
            production = {green: 0, blue: 100}
        elif self.stage == "TEST_TRAFFIC_SHIFT":
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
        self.rollback_stages: list[str] = []  # the rollback's hook stages still to run
        self.rollback_done = False  # its hooks resolved: the green tasks stop at the next tick

    def touch(self) -> None:
        self.updated = _now()

    def summary(self, revision: Revision, test: int, production: int) -> dict[str, Any]:
        running, pending = _counts(self.backend, self.service, revision)
        return {
            "arn": revision.arn,
            "requestedTaskCount": revision.requested,
            "runningTaskCount": running,
            "pendingTaskCount": pending,
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
            "lifecycleHookDetails": (
                [e.view() for e in self.executions] if settings["lambda_hooks_in_details"] else []
            ),
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
        _scale(backend, service, deployment.target, deployment.target.requested)
    elif stage == "TEST_TRAFFIC_SHIFT":
        deployment.test_weight = 100
    elif stage == "PRODUCTION_TRAFFIC_SHIFT":
        deployment.production_weight = 100
    elif stage == "CLEAN_UP":
        _stop_all(backend, service, deployment.source)
        service._lg_revision = deployment.target
    for hook in deployment.hooks:
        if stage in hook["lifecycleStages"]:
            deployment.executions.append(Execution(deployment, hook, stage))
    ecs_tasks.sync_counts(backend, service)


def _advance(deployment: Deployment) -> None:
    """Moves the deployment through every stage with nothing left to wait for: no hook of
    the stage unresolved, and past SCALE_UP only once every green task runs (with
    `scale_up_waits_for_running`)."""
    while deployment.status == "IN_PROGRESS":
        if any(e.stage == deployment.stage and e.current for e in deployment.executions):
            return
        target = deployment.target
        if (
            deployment.stage == "SCALE_UP"
            and settings["scale_up_waits_for_running"]
            and _counts(deployment.backend, deployment.service, target)[0] < target.requested
        ):
            return
        if deployment.stage == STAGES[-1]:
            deployment.status = "SUCCESSFUL"
            deployment.finished = _now()
            deployment.touch()
            # desiredCount changes made during the deployment apply now.
            _scale(deployment.backend, deployment.service, deployment.target, deployment.service.desired_count)
            ecs_tasks.sync_counts(deployment.backend, deployment.service)
            return
        stage = STAGES[0] if deployment.stage is None else STAGES[STAGES.index(deployment.stage) + 1]
        _enter(deployment, stage)


def _roll_back(deployment: Deployment, reason: str) -> None:
    """Starts the rollback: traffic back to the source at once, then the hooks of
    ROLLBACK_STAGES run again, one stage after the other; once they have resolved, the
    green tasks stop at the next tick."""
    now = _now()
    deployment.status = "ROLLBACK_IN_PROGRESS"
    deployment.status_reason = reason
    deployment.rollback = {"reason": reason, "startedAt": _time(now), "serviceRevisionArn": deployment.source.arn}
    deployment.test_weight = deployment.production_weight = 0
    deployment.service.task_definition = deployment.source.task_definition
    deployment.rollback_stages = [
        s for s in ROLLBACK_STAGES if any(s in h["lifecycleStages"] for h in deployment.hooks)
    ]
    deployment.touch()
    _advance_rollback(deployment)


def _advance_rollback(deployment: Deployment) -> None:
    """Runs the rollback's hook stages until one waits for a hook; then, with none left,
    lets the next tick end the rollback."""
    while deployment.status == "ROLLBACK_IN_PROGRESS":
        if any(e.rollback and e.current for e in deployment.executions):
            return
        if not deployment.rollback_stages:
            deployment.rollback_done = True
            return
        stage = deployment.rollback_stages.pop(0)
        deployment.stage = stage
        deployment.touch()
        for hook in deployment.hooks:
            if stage in hook["lifecycleStages"]:
                deployment.executions.append(Execution(deployment, hook, stage, rollback=True))


def _undo(deployment: Deployment, status: str) -> None:
    """Stops and deregisters the target's tasks; the deployment ends with `status`."""
    backend, service = deployment.backend, deployment.service
    _stop_all(backend, service, deployment.target)
    deployment.test_weight = deployment.production_weight = 0
    deployment.status = status
    deployment.finished = _now()
    deployment.touch()
    _scale(backend, service, _current(service), service.desired_count)
    ecs_tasks.sync_counts(backend, service)


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
    _scale(backend, service, revision, service.desired_count)
    ecs_tasks.sync_counts(backend, service)


def _judge(execution: Execution, response: Any, error: bool) -> tuple[str, str | None]:
    """Reads a function's output as ECS does: (outcome, why it is invalid). The outcome is
    ERROR (a function error), INVALID, SUCCEEDED, FAILED or IN_PROGRESS; an IN_PROGRESS
    output is applied here (hookDetails merged, the next invocation due)."""
    if error:
        return "ERROR", None
    if not isinstance(response, dict):
        return "INVALID", "the output is not a JSON object"
    status = response.get("hookStatus")
    if status in ("SUCCEEDED", "FAILED"):
        return status, None
    if status != "IN_PROGRESS":
        return "INVALID", f"hookStatus {json.dumps(status)} is not SUCCEEDED, FAILED or IN_PROGRESS"
    delay = response.get("callBackDelay", DEFAULT_CALLBACK_DELAY)
    details = response.get("hookDetails")
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        return "INVALID", f"callBackDelay {json.dumps(delay)} is not an integer >= 0"
    if details is not None and not isinstance(details, dict):
        return "INVALID", "hookDetails is not a JSON object"
    execution.hook_details.update(details or {})
    execution.due_at = _now() + delay
    return "IN_PROGRESS", None


def _answer(execution: Execution, response: Any, error: bool) -> str:
    """Applies a function's output to its execution as ECS does; returns the outcome. In
    a rollback an execution that does not succeed ends FAILED and the rollback goes on."""
    deployment = execution.deployment
    outcome, invalid = _judge(execution, response, error)
    deployment.touch()
    if outcome == "IN_PROGRESS":
        return outcome
    execution.status = "SUCCEEDED" if outcome == "SUCCEEDED" else "FAILED"
    if execution.rollback:
        _advance_rollback(deployment)
    elif outcome == "SUCCEEDED":
        _advance(deployment)
    else:
        arn, stage = execution.hook["hookTargetArn"], execution.stage
        _roll_back(deployment, {
            "ERROR": f"lifecycle hook {arn} failed (function error) at {stage}",
            "FAILED": f"lifecycle hook {arn} returned FAILED at {stage}",
            "INVALID": f"lifecycle hook {arn} returned an invalid response at {stage}: {invalid}",
        }[outcome])
    return outcome


def _all_deployments() -> list[Deployment]:
    """Every service deployment, in any account and region."""
    return [
        d
        for regions in list(ecs_models.ecs_backends.values())
        for backend in list(regions.values())
        for d in list(_deployments(backend).values())
    ]


def _all_services() -> list[Any]:
    """Every ACTIVE service whose tasks this module runs, in any account and region."""
    return [
        service
        for regions in list(ecs_models.ecs_backends.values())
        for backend in list(regions.values())
        for service in list(backend.services.values())
        if _current(service) is not None and service.status == "ACTIVE"
    ]


def _place_again(service: Any) -> None:
    """Tries again to start the tasks no container instance could host: the current
    revision's outside a deployment, the target's from SCALE_UP on."""
    backend = ecs_models.ecs_backends[service._account_id][service.region_name]
    deployment = _ongoing(service)
    if deployment is None and _current(service).unplaced:
        _scale(backend, service, _current(service), service.desired_count)
    elif deployment is not None and deployment.status == "IN_PROGRESS" and deployment.target.unplaced:
        if deployment.stage in STAGES[STAGES.index("SCALE_UP"):]:
            _scale(backend, service, deployment.target, deployment.target.requested)
            _advance(deployment)
    else:
        return
    ecs_tasks.sync_counts(backend, service)


def _tick() -> None:
    """Applies hook timeouts, ends the rollbacks whose hooks have resolved, and places the
    tasks that could not be placed before."""
    now = _now()
    with _lock:
        for deployment in _all_deployments():
            if deployment.status == "ROLLBACK_IN_PROGRESS" and deployment.rollback_done:
                _undo(deployment, "ROLLBACK_SUCCESSFUL")
                continue
            for execution in list(deployment.executions):
                if not execution.current or now < execution.expires_at:
                    continue
                execution.status = "TIMED_OUT"
                deployment.touch()
                if execution.rollback:
                    _advance_rollback(deployment)  # whatever its action: the rollback goes on
                elif execution.hook["timeoutAction"] == "CONTINUE":
                    _advance(deployment)
                else:
                    _roll_back(deployment, f"lifecycle hook {execution.hook['hookTargetArn']} "
                                           f"timed out at {execution.stage}")
        for service in _all_services():
            _place_again(service)


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
            ecs_tasks.sync_counts(backend, service)
    return answer


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
        answer = []
        for revision, requested in revisions:
            running, pending = _counts(backend, service, revision)
            answer.append({"arn": revision.arn, "requestedTaskCount": requested,
                           "runningTaskCount": running, "pendingTaskCount": pending})
        return answer


def _deployment_entry(backend: Any, service: Any, revision: Revision, status: str, desired: int,
                      rollout: str | None = None) -> dict[str, Any]:
    """The service's `deployments[]` entry of one revision: the tasks it started."""
    running, pending = _counts(backend, service, revision)
    entry = {
        "id": revision.deployment_id,
        "status": status,
        "taskDefinition": revision.task_definition,
        "desiredCount": desired,
        "pendingCount": pending,
        "runningCount": running,
        "failedTasks": 0,
        "createdAt": _time(revision.created),
        "updatedAt": _time(revision.updated),
        "launchType": revision.launch_type,
        "platformVersion": revision.platform_version,
        "networkConfiguration": revision.network_configuration,
        "rolloutState": rollout or ("COMPLETED" if running >= desired else "IN_PROGRESS"),
    }
    return {k: v for k, v in entry.items() if v is not None}


def _service_deployments(service: Any) -> list[dict[str, Any]]:
    """`deployments[]`: one entry per revision with tasks running or starting, PRIMARY the
    newest (a blue/green deployment's target; in its rollback, the source again), the
    others ACTIVE. moto's own list for services this module does not run."""
    with _lock:
        current = _current(service)
        if current is None:
            return getattr(service, "_lg_moto_deployments", [])
        backend = ecs_models.ecs_backends[service._account_id][service.region_name]
        deployment = _ongoing(service)
        if deployment is None or deployment.target is current:
            return [_deployment_entry(backend, service, current, "PRIMARY", service.desired_count)]
        target = deployment.target
        if deployment.status == "IN_PROGRESS":
            return [
                _deployment_entry(backend, service, target, "PRIMARY", target.requested, "IN_PROGRESS"),
                _deployment_entry(backend, service, current, "ACTIVE", service.desired_count),
            ]
        entries = [_deployment_entry(backend, service, current, "PRIMARY", service.desired_count, "IN_PROGRESS")]
        if sum(_counts(backend, service, target)):
            entries.append(_deployment_entry(backend, service, target, "ACTIVE", target.requested, "FAILED"))
        return entries


def _keep_moto_deployments(service: Any, value: list[dict[str, Any]]) -> None:
    service._lg_moto_deployments = value


# --- the control surface ----------------------------------------------------------------------


def _hand_out() -> list[dict[str, Any]]:
    """The due invocations, each handed out once."""
    now = _now()
    invocations = []
    for deployment in _all_deployments():
        for execution in deployment.executions:
            if not execution.current or execution.due_at is None or execution.due_at > now:
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
            if not isinstance(body, dict):
                return "400 Bad Request", {"error": "the body must be a JSON object"}
            try:
                configure(body)
            except ValueError as err:
                return "400 Bad Request", {"error": str(err)}
            return "200 OK", dict(settings)
    return None


_ticker: threading.Thread | None = None


def install() -> None:
    """Patches moto's ECS services and starts the deployments' timer thread (ecs_tasks.py
    patches the tasks). Idempotent."""
    global _ticker
    service = ecs_models.Service
    service.deployment_configuration = None
    service.current_service_deployment = property(_current_service_deployment)
    service.current_service_revisions = property(_current_service_revisions)
    service.deployments = property(_service_deployments, _keep_moto_deployments)
    cls = ecs_responses.EC2ContainerServiceResponse
    cls.create_service = create_service
    cls.update_service = update_service
    cls.describe_service_deployments = describe_service_deployments
    cls.list_service_deployments = list_service_deployments
    cls.describe_service_revisions = describe_service_revisions
    if _ticker is None:
        _ticker = threading.Thread(target=_loop, daemon=True, name="ecs-deployments")
        _ticker.start()
