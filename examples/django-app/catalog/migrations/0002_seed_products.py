from django.db import migrations


def seed(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    Product.objects.bulk_create(
        [Product(name="Teapot", price_cents=2500), Product(name="Cup", price_cents=800)]
    )


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
