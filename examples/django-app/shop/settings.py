"""Settings for the example shop, configured from the environment.

| variable | meaning |
|---|---|
| DJANGO_SECRET_KEY | required; start-up fails without it |
| DJANGO_ALLOWED_HOSTS | comma-separated host names (for example `.example.com`) |
| ALLOWED_HOSTS_FROM_IMDS | `1`: add the instance's private IP, read with IMDSv2 at start-up |
| INSTANCE_PRIVATE_IP | the instance's private IP, added to the allowed hosts without asking IMDS |
| IMDS_ENDPOINT | the metadata service, default `http://169.254.169.254` |
| DJANGO_DB_PATH | the SQLite database file |
| DJANGO_SECURE_SSL_REDIRECT | `1`: redirect http to https, except the health paths |
| SHOP_CURRENCY | the currency prices are shown in; the home page fails without it (while /ping still answers 200) |
"""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"the environment variable {name} is required")
    return value


SECRET_KEY = require_env("DJANGO_SECRET_KEY")
DEBUG = False

ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h]
# The load balancer's health checker sends Host: <private-ip>:<port> (shop/instance_ip.py).
if os.environ.get("INSTANCE_PRIVATE_IP"):
    from shop.instance_ip import from_environment

    try:
        ALLOWED_HOSTS.append(from_environment(os.environ["INSTANCE_PRIVATE_IP"]))
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None
elif os.environ.get("ALLOWED_HOSTS_FROM_IMDS") == "1":
    from shop.instance_ip import IMDS, MetadataUnavailable, private_ipv4

    try:
        ALLOWED_HOSTS.append(private_ipv4(os.environ.get("IMDS_ENDPOINT", IMDS)))
    except MetadataUnavailable as error:
        raise ImproperlyConfigured(f"ALLOWED_HOSTS_FROM_IMDS=1: {error}") from None

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "catalog",
]
try:  # optional: the same checks through django-health-check, at /ht/
    import health_check  # noqa: F401

    INSTALLED_APPS.append("health_check")
except ImportError:  # pragma: no cover
    pass

# Read when a page is rendered, not at start-up: a release that forgets it starts fine,
# answers /ping, and serves 500 pages.
SHOP_CURRENCY = os.environ.get("SHOP_CURRENCY")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# Behind a TLS-terminating load balancer: redirect plain http to https, but never the
# health paths, which the load balancer (and launch-gate) request over plain http.
SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT") == "1"
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ping$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
