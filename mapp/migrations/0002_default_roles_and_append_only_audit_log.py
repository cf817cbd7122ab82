from django.db import migrations


def create_default_roles(apps, schema_editor):
    from mapp.roles import ensure_default_roles

    ensure_default_roles(apps.get_model("mapp", "Role"))


APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION mapp_audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'mapp_auditlogentry is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER mapp_audit_log_append_only
BEFORE UPDATE OR DELETE ON mapp_auditlogentry
FOR EACH ROW EXECUTE FUNCTION mapp_audit_log_append_only();
"""

REMOVE_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS mapp_audit_log_append_only ON mapp_auditlogentry;
DROP FUNCTION IF EXISTS mapp_audit_log_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("mapp", "0001_initial")]

    operations = [
        migrations.RunPython(create_default_roles, migrations.RunPython.noop),
        migrations.RunSQL(APPEND_ONLY_SQL, REMOVE_APPEND_ONLY_SQL),
    ]
