from django.db import migrations


def seed_rules(apps, schema_editor):
    from prospects.normalization import DEFAULT_CLASSIFICATION_RULES

    ClassificationRule = apps.get_model("prospects", "ClassificationRule")
    for kind, pattern, value, priority in DEFAULT_CLASSIFICATION_RULES:
        ClassificationRule.objects.get_or_create(
            kind=kind, pattern=pattern, defaults={"value": value, "priority": priority}
        )


class Migration(migrations.Migration):
    dependencies = [("prospects", "0002_company_customfield_task_prospect_address_line_and_more")]

    operations = [migrations.RunPython(seed_rules, migrations.RunPython.noop)]
