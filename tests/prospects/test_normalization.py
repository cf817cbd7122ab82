"""名寄せ: the shapes Japanese input arrives in all reduce to one key."""

from __future__ import annotations

import pytest

from prospects.models import DepartmentCategory, JobLevel
from prospects.normalization import (
    DEFAULT_CLASSIFICATION_RULES,
    Rule,
    classify,
    normalize_company_name,
    normalize_email,
    normalize_kana,
    normalize_person_name,
)


@pytest.mark.parametrize(
    "written",
    [
        "株式会社サンプル商事",
        "サンプル商事株式会社",
        "(株)サンプル商事",
        "（株）サンプル商事",
        "㈱サンプル商事",
        "サンプル商事㈱",
        "株式会社 サンプル商事",
        "株式会社　サンプル商事",
        "ｻﾝﾌﾟﾙ商事株式会社",
    ],
)
def test_company_name_forms_share_one_key(written: str) -> None:
    assert normalize_company_name(written) == "サンプル商事"


def test_company_keys_fold_width_case_and_english_legal_forms() -> None:
    assert normalize_company_name("ＡＢＣ　Ｔｅｃｈ株式会社") == normalize_company_name("abc tech")
    assert normalize_company_name("Sample Trading Co., Ltd.") == "sampletrading"
    assert normalize_company_name("Mirai Inc.") == normalize_company_name("MIRAI, Inc")
    assert normalize_company_name("有限会社青空デザイン") == normalize_company_name(
        "青空デザイン(有)"
    )
    assert normalize_company_name("一般社団法人日本マーケティング協会") == "日本マーケティング協会"
    # The katakana long vowel belongs to the word and stays.
    assert normalize_company_name("株式会社マーケティングラボ") == "マーケティングラボ"
    assert normalize_company_name("") == ""


def test_person_names_ignore_spacing_and_width() -> None:
    key = normalize_person_name("山田", "太郎")
    assert normalize_person_name("山田 ", "　太郎") == key
    assert normalize_person_name("山田　太郎", "") == key
    assert normalize_person_name("Taro", "YAMADA") == normalize_person_name("taro", "yamada")


def test_kana_readings_fold_to_full_width_katakana() -> None:
    assert normalize_kana("やまだ") == "ヤマダ"
    assert normalize_kana("ﾔﾏﾀﾞ") == "ヤマダ"
    assert normalize_kana("ヤマ ダ") == "ヤマダ"


def test_email_addresses_are_lower_cased_and_width_folded() -> None:
    assert normalize_email("  Taro.Yamada@Example.CO.JP ") == "taro.yamada@example.co.jp"
    assert normalize_email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "taro@example.jp"


RULES = [
    Rule(pattern, value, priority)
    for _kind, pattern, value, priority in DEFAULT_CLASSIFICATION_RULES
]
JOB_RULES = [
    Rule(p.lower(), v, pr) for k, p, v, pr in DEFAULT_CLASSIFICATION_RULES if k == "job_level"
]
DEPARTMENT_RULES = [
    Rule(p.lower(), v, pr) for k, p, v, pr in DEFAULT_CLASSIFICATION_RULES if k == "department"
]


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("代表取締役社長", JobLevel.EXECUTIVE),
        ("執行役員 CTO", JobLevel.EXECUTIVE),
        ("営業部 部長", JobLevel.DIRECTOR),
        ("副部長", JobLevel.DIRECTOR),
        ("担当部長", JobLevel.DIRECTOR),
        ("情報システム課 課長", JobLevel.MANAGER),
        ("課長代理", JobLevel.SUPERVISOR),
        ("主任", JobLevel.SUPERVISOR),
        ("営業担当", JobLevel.STAFF),
        ("Marketing Manager", JobLevel.MANAGER),
        ("VP of Sales", JobLevel.DIRECTOR),
        ("Chief Executive Officer", JobLevel.EXECUTIVE),
        ("ＣＥＯ", JobLevel.EXECUTIVE),
    ],
)
def test_job_titles_map_to_job_levels(title: str, level: JobLevel) -> None:
    assert classify(title, JOB_RULES) == str(int(level))


@pytest.mark.parametrize(
    ("department", "category"),
    [
        ("情報システム部", DepartmentCategory.IT),
        ("営業本部 第一営業部", DepartmentCategory.SALES),
        ("経営企画室", DepartmentCategory.CORPORATE_PLANNING),
        ("マーケティング部", DepartmentCategory.MARKETING),
        ("人事部", DepartmentCategory.HR),
        ("IT Department", DepartmentCategory.IT),
        ("Facilities", None),  # "it" must not match inside words
    ],
)
def test_departments_map_to_categories(
    department: str, category: DepartmentCategory | None
) -> None:
    expected = category.value if category is not None else None
    assert classify(department, DEPARTMENT_RULES) == expected
