from django.urls import path

from catalog.views import home
from shop.health import health, ping

urlpatterns = [
    path("", home, name="home"),
    path("health", health, name="health"),
    path("ping", ping, name="ping"),
]
