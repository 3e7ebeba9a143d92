"""The same deep checks through django-health-check (4.x), for apps that use it.

django-health-check 4.x has no migrations check of its own; `Migrations` adds one. With
`?format=json` the view answers `{"Database(alias='default')": "OK", "Migrations()": "..."}`,
200 when every check says OK and 500 otherwise.
"""
import dataclasses

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Fails while migrations are unapplied."""

    alias: str = DEFAULT_DB_ALIAS

    def run(self) -> None:
        executor = MigrationExecutor(connections[self.alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise ServiceUnavailable(f"{len(plan)} unapplied migrations")
