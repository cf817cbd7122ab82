"""Marketer templates: merge fields, escaping, the sandbox's refusals and limits, sanitising."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from mapp import templating
from mapp.models import AccountSettings, Role
from mapp.templating import (
    MergeContext,
    MergeField,
    TemplateError,
    merge_field_catalogue,
    register_merge_field,
    render_marketer_template,
    sanitize_html,
    template_validate,
)
from tests.factories import ProspectFactory, make_user

PREVIEW = MergeContext(preview=True)
# Every refusal must come long before a worker would notice: these tests run in milliseconds.
QUICKLY = 0.5


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields a test registers disappear after it (the registry is process-wide)."""
    monkeypatch.setattr(templating, "_fields", dict(templating._fields))


def refused(source: str, context: MergeContext = PREVIEW) -> str:
    started = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render_marketer_template(source, context)
    assert time.perf_counter() - started < QUICKLY
    return str(caught.value)


# --- Merge fields -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prospect_fields_render_in_japanese_order() -> None:
    prospect = ProspectFactory.create(
        last_name="山田",
        first_name="太郎",
        email="taro@sample-shoji.co.jp",
        company_name="株式会社サンプル商事",
        department="営業部",
        job_title="部長",
        phone="03-1234-5678",
    )
    source = (
        "{{ prospect.company }} {{ prospect.department }} {{ prospect.job_title }}\n"
        "{{ prospect.full_name }} 様（{{ prospect.last_name }}/{{ prospect.first_name }}）\n"
        "{{ prospect.email }} {{ prospect.phone }}"
    )

    html = render_marketer_template(source, MergeContext(prospect=prospect))

    assert html == (
        "株式会社サンプル商事 営業部 部長\n"
        "山田 太郎 様（山田/太郎）\n"
        "taro@sample-shoji.co.jp 03-1234-5678"
    )


@pytest.mark.django_db
def test_sender_fields_come_from_the_sending_user() -> None:
    sender = make_user(
        Role.MARKETING, email="ichiro@example.jp", last_name="鈴木", first_name="一郎"
    )

    html = render_marketer_template(
        "{{ sender.name }}（{{ sender.email }}）", MergeContext(user=sender)
    )

    assert html == "鈴木 一郎（ichiro@example.jp）"


@pytest.mark.django_db
def test_a_missing_value_renders_empty_and_default_replaces_it() -> None:
    prospect = ProspectFactory.create(job_title="")

    html = render_marketer_template(
        "[{{ prospect.job_title }}][{{ prospect.job_title|default('ご担当者') }}]"
        "[{{ sender.name }}]",
        MergeContext(prospect=prospect),
    )

    assert html == "[][ご担当者][]"


@pytest.mark.django_db
def test_merge_values_are_escaped_but_the_marketers_html_is_not() -> None:
    prospect = ProspectFactory.create(
        first_name="<script>alert(1)</script>", company_name='"><img src=x onerror=alert(1)>'
    )

    html = render_marketer_template(
        '<p class="lead"><b>{{ prospect.first_name }}</b> {{ prospect.company }}</p>',
        MergeContext(prospect=prospect),
    )

    assert html == (
        '<p class="lead"><b>&lt;script&gt;alert(1)&lt;/script&gt;</b> '
        "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"
    )


@pytest.mark.django_db
def test_one_compiled_template_renders_each_prospect_with_their_own_values() -> None:
    first = ProspectFactory.create(last_name="佐藤", first_name="花子")
    second = ProspectFactory.create(last_name="高橋", first_name="健")
    source = "{{ prospect.full_name }}様"

    assert render_marketer_template(source, MergeContext(prospect=first)) == "佐藤 花子様"
    assert render_marketer_template(source, MergeContext(prospect=second)) == "高橋 健様"


def test_preview_without_a_prospect_shows_the_examples() -> None:
    source = "{{ prospect.full_name }} / {{ prospect.company }} / {{ sender.name }}"

    assert render_marketer_template(source, PREVIEW) == "山田 太郎 / 株式会社サンプル / 鈴木 一郎"
    assert render_marketer_template(source, MergeContext()) == " /  / "


@pytest.mark.django_db
def test_account_name_reads_the_account_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        AccountSettings, "load", classmethod(lambda cls: SimpleNamespace(name="株式会社マップ"))
    )

    assert render_marketer_template("{{ account.name }}", MergeContext()) == "株式会社マップ"


@pytest.mark.usefixtures("own_registry")
def test_per_render_values_come_from_extra_for_registered_fields_only() -> None:
    register_merge_field(
        MergeField(
            key="unsubscribe_url",
            label="Unsubscribe link",
            group="Email",
            example="https://example.jp/u/example",
        )
    )
    source = '<a href="{{ unsubscribe_url }}">配信停止</a>'

    html = render_marketer_template(
        source, MergeContext(extra={"unsubscribe_url": "https://example.jp/u/1?a=1&b=2"})
    )

    assert html == '<a href="https://example.jp/u/1?a=1&amp;b=2">配信停止</a>'
    assert render_marketer_template(source, PREVIEW) == (
        '<a href="https://example.jp/u/example">配信停止</a>'
    )
    with pytest.raises(ValueError, match="unregistered") as caught:
        render_marketer_template(source, MergeContext(extra={"tracking_id": "x"}))
    assert not isinstance(caught.value, TemplateError)


@pytest.mark.usefixtures("own_registry")
def test_only_the_fields_a_template_names_are_resolved() -> None:
    calls: list[Any] = []

    def costly(context: MergeContext) -> str:
        calls.append(context)
        return "値"

    register_merge_field(
        MergeField(key="crm.segment", label="Segment", group="CRM", resolve=costly)
    )

    assert render_marketer_template("{{ prospect.first_name }}", MergeContext()) == ""
    assert calls == []
    assert render_marketer_template("{{ crm.segment }}", MergeContext()) == "値"
    assert len(calls) == 1


def test_the_catalogue_lists_the_documented_fields_with_placeholders() -> None:
    catalogue = {merge_field.key: merge_field for merge_field in merge_field_catalogue()}

    assert set(catalogue) >= {
        "prospect.first_name",
        "prospect.last_name",
        "prospect.full_name",
        "prospect.email",
        "prospect.company",
        "prospect.job_title",
        "prospect.department",
        "prospect.phone",
        "account.name",
        "sender.name",
        "sender.email",
    }
    assert catalogue["prospect.full_name"].placeholder == "{{ prospect.full_name }}"
    assert catalogue["prospect.full_name"].example == "山田 太郎"


@pytest.mark.usefixtures("own_registry")
@pytest.mark.parametrize(
    "key",
    ["Prospect.name", "prospect.items", "loop", "range.x", "a.b.c.d", "prospect.first_name.kana"],
)
def test_keys_templates_cannot_reach_or_that_clash_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="Merge field"):
        register_merge_field(MergeField(key=key, label="x", group="x", resolve=lambda c: ""))


# --- Escapes and resource limits ----------------------------------------------------------------


@pytest.mark.usefixtures("english")
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "Line 1: “__class__” is not available in templates"),
        (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "Line 1: “__class__” is not available in templates",
        ),
        ("{{ x|attr('__class__') }}", "The filter “attr” is not available"),
        ("{{ cycler.__init__.__globals__ }}", "Line 1: “__init__” is not available"),
        ("{{ self }}", "“self” is not available in templates"),
        ("{% include 'x' %}", "The “include” tag is not allowed"),
        ("{% extends 'base.html' %}", "The “extends” tag is not allowed"),
        ("{% import 'forms.html' as forms %}", "The “import” tag is not allowed"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "The “macro” tag is not allowed"),
        ("{% autoescape false %}{{ prospect.first_name }}{% endautoescape %}", "autoescape"),
        # CVE-2024-56326 / CVE-2025-27516 reached str.format; nothing but range() is callable.
        ("{{ '{0.__class__}'.format(1) }}", "Only range(), loop.cycle() and loop.changed()"),
        ("{{ prospect.first_name.upper() }}", "Only range(), loop.cycle() and loop.changed()"),
        ("{{ prospect.first_name.upper }}", "“upper” is not available"),
        ("{% set name = '__class__' %}{{ ''[name] }}", "“__class__” is not available"),
        ("{% for i in range(10**9) %}{% endfor %}", "range() is limited to 1,000 items"),
        ("{{ 'a' * 100000000 }}", "The text is too long"),
        ("{{ 9**9**9 }}", "The number is too large"),
        ("{{ 10**10**10 }}", "The number is too large"),
        ("{{ '%999999999s' % 'a' }}", "Text formatting with “%” is not allowed"),
        ("{% set s = 'a' * 60000 %}{{ s ~ s }}", "The text is too long"),
        ("{{ 'ab'|replace('', 'x' * 60000) }}", "The text is too long"),
        ("{% set x = [1] %}{% set x = [x, x] %}", "Lists and groups inside lists"),
        (
            "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
            "more than 10,000 loop iterations",
        ),
        (
            "{% for i in range(1000) %}{% for j in range(5) %}{{ 'x' * 1000 }}"
            "{% endfor %}{% endfor %}",
            "The page is too large",
        ),
        (
            # Buffered output never reaches the stream; it is counted where it is written.
            "{% filter upper %}{% for i in range(1000) %}{{ 'x' * 10000 }}{% endfor %}"
            "{% endfilter %}",
            "The page is too large",
        ),
        ("{{ prospect }}", "cannot be shown as text"),
    ],
)
def test_escapes_and_bombs_are_refused_quickly_with_a_clear_message(
    source: str, message: str
) -> None:
    assert message in refused(source)


@pytest.mark.usefixtures("english")
def test_an_oversized_source_is_refused_before_parsing() -> None:
    message = refused("あ" * (templating.MAX_SOURCE_LENGTH + 1))

    assert message.startswith("The template is too long")


@pytest.mark.usefixtures("english")
def test_an_error_while_rendering_names_its_line() -> None:
    message = refused("<p>\n{% for i in range(2) %}\n{{ 1 // 0 }}\n{% endfor %}")

    assert message.startswith("Line 3: The template could not be rendered")


@pytest.mark.usefixtures("english")
def test_a_syntax_error_names_its_line_in_rendering_and_validation() -> None:
    source = "<h1>{{ prospect.full_name }}</h1>\n<p>\n{% if %}\n</p>"

    assert refused(source).startswith("Line 3: Syntax error:")
    assert [message[:22] for message in template_validate(source)] == ["Line 3: Syntax error: "]


def test_loops_and_the_allowed_filters_work() -> None:
    source = (
        "{% for i in range(3) %}{{ loop.cycle('odd', 'even') }}{{ loop.index }}"
        "{% if not loop.last %},{% endif %}{% endfor %}|"
        "{{ prospect.first_name|upper }}{{ 'ＡＢＣ'|lower }}{{ ' x '|trim }}"
        "{{ prospect.company|replace('株式会社', '(株)') }}{{ prospect.company|length }}|"
        "{{ 'あいうえおかきくけこ'|truncate(6, true, '…') }}"
    )

    assert render_marketer_template(source, PREVIEW) == (
        "odd1,even2,odd3|太郎ａｂｃx(株)サンプル8|あいうえお…"
    )


# --- Validation ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("english")
def test_validation_reports_unknown_merge_fields_that_render_empty() -> None:
    source = "{{ prospect.first_nam }} {{ prospect.full_name }}\n{{ contact.name }}"

    assert template_validate(source) == [
        "Line 1: “prospect.first_nam” is not a merge field.",
        "Line 2: “contact.name” is not a merge field.",
    ]
    assert render_marketer_template(source, PREVIEW) == " 山田 太郎\n"


@pytest.mark.usefixtures("english")
def test_validation_accepts_local_variables_loops_and_known_fields() -> None:
    source = (
        "{% set greeting = 'こんにちは' %}{{ greeting }} {{ prospect.first_name }}"
        "{% for item in ['a', 'b'] %}{{ item }}{{ loop.index }}{% endfor %}"
        "{% with name = sender.name %}{{ name }}{% endwith %}{{ range(3)|length }}"
    )

    assert template_validate(source) == []


@pytest.mark.usefixtures("english")
def test_validation_reports_every_disallowed_construct_and_hidden_merge_fields() -> None:
    source = "{% include 'x' %}\n{{ ''.__class__ }}\n{{ prospect|attr('x') }}"

    assert template_validate(source) == [
        "Line 1: The “include” tag is not allowed in templates.",
        "Line 2: “__class__” is not available in templates.",
        "Line 3: The filter “attr” is not available. Available filters: "
        "d, default, e, escape, length, lower, replace, title, trim, truncate, upper.",
    ]
    assert template_validate("{% set prospect = 'x' %}") == [
        "Line 1: “prospect” is a merge field and cannot be assigned to."
    ]


# --- Sanitising ---------------------------------------------------------------------------------


def test_sanitize_removes_scripts_handlers_and_dangerous_urls() -> None:
    html = sanitize_html(
        "<script>alert(1)</script>"
        '<img src="https://cdn.example.jp/a.png" alt="写真" onerror="alert(1)">'
        '<a href="javascript:alert(1)">危険</a>'
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">'
        '<iframe src="https://evil.example"></iframe>'
        '<form action="https://evil.example"><input name="p">送信</form>'
        '<div style="background-image: url(https://evil.example/x); color: red">色</div>'
        '<span style="width: url(javascript:alert(1))">幅</span>'
    )

    assert html == (
        '<img src="https://cdn.example.jp/a.png" alt="写真">'
        '<a rel="noopener noreferrer">危険</a>'
        "<img>"
        "送信"
        '<div style="color:red">色</div>'
        "<span>幅</span>"
    )


def test_sanitize_keeps_japanese_text_and_marketing_markup() -> None:
    source = (
        '<h1 class="title">新製品のご案内</h1><p>山田 様、<strong>いつも</strong>'
        "<em>ありがとう</em>ございます。<br></p><hr>"
        "<ul><li>特長</li></ul><ol><li>手順</li></ol>"
        '<table width="600"><tbody><tr><td colspan="2">表</td></tr></tbody></table>'
        '<div class="cta"><span class="note">詳しくは</span>'
        '<a href="https://example.jp/lp" title="詳細" target="_blank">こちら</a>'
        '<a href="mailto:info@example.jp">メール</a><a href="tel:0312345678">電話</a></div>'
    )

    assert sanitize_html(source) == (
        '<h1 class="title">新製品のご案内</h1><p>山田 様、<strong>いつも</strong>'
        "<em>ありがとう</em>ございます。<br></p><hr>"
        "<ul><li>特長</li></ul><ol><li>手順</li></ol>"
        '<table width="600"><tbody><tr><td colspan="2">表</td></tr></tbody></table>'
        '<div class="cta"><span class="note">詳しくは</span>'
        '<a href="https://example.jp/lp" title="詳細" target="_blank" '
        'rel="noopener noreferrer">こちら</a>'
        '<a href="mailto:info@example.jp" rel="noopener noreferrer">メール</a>'
        '<a href="tel:0312345678" rel="noopener noreferrer">電話</a></div>'
    )


@pytest.mark.django_db
def test_a_preview_inside_the_app_is_the_rendered_page_sanitised() -> None:
    prospect = ProspectFactory.create(first_name="<img src=x onerror=alert(1)>")
    source = "<p>{{ prospect.first_name }}様</p><script>track()</script>"

    page = render_marketer_template(source, MergeContext(prospect=prospect))
    preview = sanitize_html(page)

    assert "<script>track()</script>" in page  # the marketer's own page keeps its script
    assert preview == "<p>&lt;img src=x onerror=alert(1)&gt;様</p>"
