"""Compile locale/*/LC_MESSAGES/django.po to .mo with polib (no GNU gettext needed).

English is the source language: its catalogue is filled with msgstr = msgid so that it is
complete by construction. Japanese must be translated by hand; tests/test_i18n.py fails on any
untranslated or fuzzy Japanese entry, and on a .mo that is older than its .po.
"""

from __future__ import annotations

from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def fill_english(catalogue: polib.POFile) -> None:
    for entry in catalogue:
        if entry.msgid_plural:
            if not any(entry.msgstr_plural.values()):
                entry.msgstr_plural = {0: entry.msgid, 1: entry.msgid_plural}
        elif not entry.msgstr:
            entry.msgstr = entry.msgid
        if "fuzzy" in entry.flags:
            entry.flags.remove("fuzzy")
            entry.msgstr = entry.msgid


def main() -> None:
    for po_path in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/django.po")):
        catalogue = polib.pofile(str(po_path), wrapwidth=0)
        if po_path.parts[-3] == "en":
            fill_english(catalogue)
            catalogue.save(str(po_path))
        catalogue.save_as_mofile(str(po_path.with_suffix(".mo")))
        print(
            f"compiled {po_path.relative_to(LOCALE_DIR.parent)} ({catalogue.percent_translated()}%)"
        )


if __name__ == "__main__":
    main()
