"""Seeds Account Engagement's Default grading profile and the account's HOT rule.

Default profile (reference sheet §3): five criteria, each worth 2/3 of a letter; their criteria
are empty until an administrator says what a good fit is (an empty criterion is "unknown" for
every prospect, so it moves no grade). HOT rule (seed 003, Hot Profile seed 002): score ≥ 80,
and becoming HOT notifies the assigned user and creates a follow-up task due the next day.
"""

from django.db import migrations

DEFAULT_CRITERIA = [
    ("会社規模 / Company size", 0),
    ("業種 / Industry", 1),
    ("所在地 / Location", 2),
    ("役職 / Job title", 3),
    ("部署 / Department", 4),
]

HOT_ACTIONS = [
    {"action": "notify_assigned_user", "config": {"note": ""}},
    {
        "action": "create_task_for_assigned_user",
        "config": {
            "subject": "HOTリードをフォロー / Follow up a HOT lead",
            "due_in_days": 1,
            "priority": 3,
            "notes": "",
        },
    },
]


def seed(apps, schema_editor):
    GradingProfile = apps.get_model("scoring", "GradingProfile")
    GradingCriterion = apps.get_model("scoring", "GradingCriterion")
    HotRule = apps.get_model("scoring", "HotRule")
    Prospect = apps.get_model("prospects", "Prospect")

    if not GradingProfile.objects.filter(is_default=True).exists():
        profile = GradingProfile.objects.create(name="Default", description="", is_default=True)
        GradingCriterion.objects.bulk_create(
            GradingCriterion(profile=profile, name=name, criteria={}, weight=2, position=position)
            for name, position in DEFAULT_CRITERIA
        )
    if not HotRule.objects.exists():
        HotRule.objects.create(threshold=80, criteria={}, actions=HOT_ACTIONS)
    # Every prospect starts at D.
    Prospect.objects.filter(grade="").update(grade="D")


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0003_grading_hot_page_actions_decay"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
