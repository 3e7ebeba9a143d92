from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import render

from catalog.models import Product


def home(request):
    """The page a customer sees first; the deep health check renders it as a smoke test."""
    if not settings.SHOP_CURRENCY:
        raise ImproperlyConfigured("SHOP_CURRENCY is not set")
    products = list(Product.objects.order_by("name")[:20])
    return render(request, "catalog/home.html", {"products": products, "currency": settings.SHOP_CURRENCY})
