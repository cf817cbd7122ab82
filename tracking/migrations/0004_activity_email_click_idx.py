"""Email reports and A/B winners count an email's clicks by the email id in the payload; this
partial index keeps that a range scan over that email's clicks instead of every click since."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tracking", "0003_hit_queue_cursor")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS tracking_activity_email_click_idx ON tracking_activity "
            "((payload->>'email_id'), occurred_at) WHERE type = 'email_clicked';",
            reverse_sql="DROP INDEX IF EXISTS tracking_activity_email_click_idx;",
        ),
    ]
