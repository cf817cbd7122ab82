from django.db import migrations


def seed_rules(apps, schema_editor):
    from prospects.normalization import ensure_default_classification_rules

    ensure_default_classification_rules(apps.get_model("prospects", "ClassificationRule"))


class Migration(migrations.Migration):
    dependencies = [("prospects", "0002_company_customfield_task_prospect_address_line_and_more")]

    operations = [migrations.RunPython(seed_rules, migrations.RunPython.noop)]
