"""Account Engagement's default scoring rules, and existing scores recorded in the ledger.

Values from Salesforce help "Default Scoring System" (mktg.pardot_leadqual_scoring_baseline),
summarised in /work/shared/reference/account-engagement.md §2.1: page view +1, custom redirect
click +3, file access +3, form / form handler / landing page success +50, their errors −5, email
open 0 counting the first open only (accounts provisioned after 2014-04-11), opportunity
created +50, lost −100, won 0. Email link click is not in that table; the older glossary's
"tracker click +3" is used and it is editable.
"""

from django.db import migrations

DEFAULT_RULES = [
    ("page_view", 1, False),
    ("custom_redirect_click", 3, False),
    ("file_download", 3, False),
    ("form_success", 50, False),
    ("landing_page_success", 50, False),
    ("form_handler_success", 50, False),
    ("form_error", -5, False),
    ("landing_page_error", -5, False),
    ("form_handler_error", -5, False),
    ("email_opened", 0, True),
    ("email_clicked", 3, False),
    ("opportunity_created", 50, False),
    ("opportunity_lost", -100, False),
    ("opportunity_won", 0, False),
]


def seed(apps, schema_editor):
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    for activity_type, points, first_time_only in DEFAULT_RULES:
        ScoringRule.objects.get_or_create(
            activity_type=activity_type,
            object_type="",
            object_id="",
            url_pattern="",
            is_default=True,
            defaults={"points": points, "first_time_only": first_time_only},
        )
    # Scores given before the ledger existed: one "initial" row each keeps score == sum.
    schema_editor.execute(
        "INSERT INTO scoring_scorechange (prospect_id, points, cause, activity_type, label, "
        "occurred_at, created_at) "
        "SELECT id, score, 'initial', '', '', now(), now() FROM prospects_prospect "
        "WHERE score <> 0"
    )


def unseed(apps, schema_editor):
    apps.get_model("scoring", "ScoringRule").objects.filter(is_default=True).delete()
    apps.get_model("scoring", "ScoreChange").objects.filter(cause="initial").delete()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [
        # Room in each page, so that a rescore changing points updates rows in place.
        migrations.RunSQL(
            "ALTER TABLE scoring_scorechange SET (fillfactor = 80)",
            "ALTER TABLE scoring_scorechange RESET (fillfactor)",
        ),
        migrations.RunPython(seed, unseed),
    ]
