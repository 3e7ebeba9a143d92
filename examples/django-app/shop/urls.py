from django.urls import path

from catalog.views import home
from shop.health import health, ping

urlpatterns = [
    path("", home, name="home"),
    path("health", health, name="health"),
    path("ping", ping, name="ping"),
]

try:  # django-health-check is optional
    from health_check.views import HealthCheckView
except ImportError:  # pragma: no cover
    pass
else:
    urlpatterns.append(
        path(
            "ht/",
            HealthCheckView.as_view(checks=["health_check.checks.Database", "shop.ht.Migrations"]),
            name="health_check",
        )
    )
