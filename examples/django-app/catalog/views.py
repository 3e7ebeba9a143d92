from django.shortcuts import render

from catalog.models import Product


def home(request):
    """The page a customer sees first; the deep health check renders it as a smoke test."""
    products = list(Product.objects.order_by("name")[:20])
    return render(request, "catalog/home.html", {"products": products})
