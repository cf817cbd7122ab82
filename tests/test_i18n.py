"""Japanese and English ship complete: every string in code and templates is translated."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polib
import pytest
from django.test import Client
from django.urls import reverse
from django.utils.translation import template as template_translation

from mapp.models import User
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = [
    "mapp",
    "prospects",
    "campaigns",
    "emails",
    "forms",
    "scoring",
    "engagement",
    "tracking",
]
GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "gettext_noop"}
PGETTEXT_NAMES = {"pgettext", "pgettext_lazy"}  # (context, message)
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _catalogue(language: str) -> polib.POFile:
    return polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))


def _python_msgids() -> set[str]:
    found: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                position = 0 if node.func.id in GETTEXT_NAMES else 1
                if node.func.id not in GETTEXT_NAMES | PGETTEXT_NAMES or len(node.args) <= position:
                    continue
                argument = node.args[position]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
    return found


def _template_msgids() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "templates").rglob("*"):
        if path.suffix not in {".html", ".txt"}:
            continue
        # Django's own makemessages turns templates into gettext calls the same way.
        code = template_translation.templatize(path.read_text())
        # A message with an apostrophe is written in double quotes, the others in single ones.
        literal = r"""u?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
        for match in re.finditer(rf" (?:p?gettext\({literal}, |gettext\()({literal})\)", code):
            found.add(ast.literal_eval(match.group(1)))
    return found


def test_every_string_in_code_and_templates_is_in_both_catalogues() -> None:
    wanted = _python_msgids() | _template_msgids()
    assert len(wanted) > 100  # the extraction itself works
    for language in ("ja", "en"):
        catalogued = {entry.msgid for entry in _catalogue(language) if entry.translated()}
        missing = sorted(wanted - catalogued)
        assert missing == [], f"{language}: run `make messages` and translate: {missing[:10]}"


@pytest.mark.parametrize("language", ["ja", "en"])
def test_catalogue_is_complete_and_placeholders_match(language: str) -> None:
    catalogue = _catalogue(language)
    assert catalogue.untranslated_entries() == []
    assert catalogue.fuzzy_entries() == []
    for entry in catalogue:
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        for translation in translations:
            # Japanese has one plural form; its placeholders must match the plural msgid's.
            source = entry.msgid_plural or entry.msgid
            assert sorted(set(PLACEHOLDER.findall(source))) == sorted(
                set(PLACEHOLDER.findall(translation))
            ), entry.msgid


@pytest.mark.parametrize("language", ["ja", "en"])
def test_compiled_catalogue_matches_its_source(language: str) -> None:
    source = {
        (entry.msgctxt, entry.msgid): entry.msgstr
        for entry in _catalogue(language)
        if entry.translated()
    }
    compiled_path = ROOT / "locale" / language / "LC_MESSAGES" / "django.mo"
    compiled = {
        (entry.msgctxt, entry.msgid): entry.msgstr
        for entry in polib.mofile(str(compiled_path))
        if entry.msgid
    }
    assert compiled == source, "run `make messages` (scripts/compile_messages.py)"


def test_the_browser_language_chooses_the_interface_language(db: None) -> None:
    japanese = Client(HTTP_ACCEPT_LANGUAGE="ja,en;q=0.5").get(reverse("login")).content.decode()
    english = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").get(reverse("login")).content.decode()
    assert "<h1>ログイン</h1>" in japanese
    assert "<h1>Sign in</h1>" in english


def test_japanese_is_the_default_without_a_browser_preference(db: None) -> None:
    assert "<h1>ログイン</h1>" in Client().get(reverse("login")).content.decode()


def test_switching_language_is_remembered_on_the_user(marketer: User) -> None:
    client = client_for(marketer)
    response = client.post(reverse("set_language"), {"language": "en", "next": "/prospects/"})
    assert response.status_code == 302
    assert response["Location"] == "/prospects/"
    assert response.cookies["mapp_language"].value == "en"
    marketer.refresh_from_db()
    assert marketer.language == "en"
    assert "<h1>Prospects</h1>" in client.get("/prospects/").content.decode()


def test_a_saved_language_applies_at_sign_in_on_a_new_browser(marketer: User) -> None:
    from tests.factories import TEST_PASSWORD

    marketer.language = "en"
    marketer.save(update_fields=["language"])
    client = Client(HTTP_ACCEPT_LANGUAGE="ja")
    response = client.post(
        reverse("login"), {"username": marketer.email, "password": TEST_PASSWORD}
    )
    assert response.cookies["mapp_language"].value == "en"
    assert "<h1>Dashboard</h1>" in client.get("/").content.decode()


def test_language_switch_refuses_to_redirect_off_site(db: None) -> None:
    response = Client().post(
        reverse("set_language"), {"language": "ja", "next": "https://evil.example/phish"}
    )
    assert response["Location"] == reverse("home")


def test_an_unknown_language_changes_nothing(db: None) -> None:
    response = Client().post(reverse("set_language"), {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert "mapp_language" not in response.cookies
