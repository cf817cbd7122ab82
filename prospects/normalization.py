"""名寄せ: normalising what people type so the same person or company matches itself.

Japanese input arrives in many shapes: 株式会社 in front or behind, (株) / ㈱ / （株）, full-width
letters and digits, half-width katakana, ideographic spaces, hiragana readings. Everything here
starts from Unicode NFKC (stdlib), which folds widths and ㈱ → (株); hiragana → katakana is a fixed
code-point offset, so no dependency is needed.

Department and job-title categories come from the editable ``ClassificationRule`` dictionary
(seeded with ``DEFAULT_CLASSIFICATION_RULES``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prospects.models import DepartmentCategory, JobLevel

_WHITESPACE = re.compile(r"\s+")
# Punctuation that people add or drop freely in company and person names.
_NAME_PUNCTUATION = re.compile(r"[\s・･.,，、。'’\"“”\-‐―－&＆/／]")

# Legal-entity designators (after NFKC), in front of or behind the name. Longest first, so
# 特定非営利活動法人 is removed whole rather than as 法人.
_LEGAL_FORMS_JA = [
    "特定非営利活動法人",
    "国立大学法人",
    "独立行政法人",
    "地方独立行政法人",
    "社会福祉法人",
    "一般社団法人",
    "一般財団法人",
    "公益社団法人",
    "公益財団法人",
    "医療法人社団",
    "医療法人財団",
    "医療法人",
    "学校法人",
    "宗教法人",
    "社団法人",
    "財団法人",
    "NPO法人",
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "(株)",
    "(有)",
    "(同)",
    "(資)",
    "(名)",
    "(医)",
    "(学)",
    "(社)",
    "(財)",
]
_LEGAL_FORMS_EN = re.compile(
    r"(?:^|\s|,)(?:co\.?,?\s*ltd\.?|company\s+limited|co\.?|ltd\.?|limited|inc\.?|"
    r"incorporated|corp\.?|corporation|llc|l\.l\.c\.|k\.k\.|g\.k\.|kabushiki\s+kaisha|gmbh|plc)"
    r"(?=$|\s|,)",
    re.IGNORECASE,
)


def nfkc(text: str | None) -> str:
    """NFKC with whitespace collapsed: ＡＢＣ→ABC, ｶﾀｶﾅ→カタカナ, ㈱→(株), U+3000→space."""
    if not text:
        return ""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def hiragana_to_katakana(text: str) -> str:
    return "".join(chr(ord(char) + 0x60) if "ぁ" <= char <= "ゖ" else char for char in text)


def normalize_email(email: str | None) -> str:
    """Addresses compare case-insensitively everywhere in mapp; full-width @ and letters fold."""
    return nfkc(email).replace(" ", "").lower()


def normalize_kana(text: str | None) -> str:
    """A reading in one form: full-width katakana, no spaces (やまだ / ﾔﾏﾀﾞ / ヤマダ → ヤマダ)."""
    return hiragana_to_katakana(nfkc(text)).replace(" ", "")


def normalize_company_name(name: str | None) -> str:
    """The matching key of a company name: 株式会社サンプル ≡ (株)サンプル ≡ サンプル株式会社 ≡ ｻﾝﾌﾟﾙ㈱."""
    text = nfkc(name)
    if not text:
        return ""
    changed = True
    while changed:
        changed = False
        for form in _LEGAL_FORMS_JA:
            if text.startswith(form):
                text, changed = text[len(form) :].strip(), True
            if text.endswith(form):
                text, changed = text[: -len(form)].strip(), True
    text = _LEGAL_FORMS_EN.sub(" ", text)
    text = hiragana_to_katakana(text).lower()
    return _NAME_PUNCTUATION.sub("", text)


def normalize_person_name(last_name: str | None, first_name: str | None) -> str:
    """山田 太郎 ≡ 山田　太郎 ≡ 山田太郎; Taro YAMADA ≡ taro yamada. Order is kept as given."""
    text = nfkc(f"{last_name or ''} {first_name or ''}")
    return _NAME_PUNCTUATION.sub("", hiragana_to_katakana(text).lower())


def ensure_default_classification_rules(rule_model: Any = None) -> None:
    """Seed the dictionary with DEFAULT_CLASSIFICATION_RULES; rules edited since are kept."""
    if rule_model is None:
        from prospects.models import ClassificationRule as rule_model
    for kind, pattern, value, priority in DEFAULT_CLASSIFICATION_RULES:
        rule_model.objects.get_or_create(
            kind=kind, pattern=pattern, defaults={"value": value, "priority": priority}
        )


@dataclass(frozen=True)
class Rule:
    pattern: str
    value: str
    priority: int = 0

    @property
    def is_ascii(self) -> bool:
        return self.pattern.isascii()


def _matches(rule: Rule, text: str) -> bool:
    if rule.is_ascii:
        # English words match whole words: "it" must not match "facilities".
        return re.search(rf"(?<![a-z0-9]){re.escape(rule.pattern)}(?![a-z0-9])", text) is not None
    return rule.pattern in text


def classify(text: str | None, rules: Iterable[Rule]) -> str | None:
    """The category of the longest matching pattern (副部長 over 部長), then highest priority."""
    normalized = nfkc(text).lower()
    if not normalized:
        return None
    best: Rule | None = None
    for rule in rules:
        if not _matches(rule, normalized):
            continue
        if best is None or (len(rule.pattern), rule.priority) > (len(best.pattern), best.priority):
            best = rule
    return best.value if best else None


_D = DepartmentCategory
_J = JobLevel

# (kind, pattern, value, priority). Patterns are compared after NFKC and lower-casing. Generic
# words (担当, staff) rank below titles of the same length, so 担当部長 is a 部長.
# fmt: off
DEFAULT_CLASSIFICATION_RULES: list[tuple[str, str, str, int]] = [
    # --- 役職 (job level) -----------------------------------------------------------------
    *[
        ("job_level", pattern, str(int(_J.EXECUTIVE)), 0)
        for pattern in [
            "代表取締役", "取締役", "代表", "社長", "副社長", "会長", "専務", "常務",
            "執行役員", "役員", "監査役", "理事長", "頭取", "ceo", "cto", "cfo", "coo",
            "cmo", "cio", "ciso", "president", "founder", "co-founder", "chairman",
            "owner", "managing director", "chief executive officer", "board member",
        ]
    ],
    *[
        ("job_level", pattern, str(int(_J.DIRECTOR)), 0)
        for pattern in [
            "本部長", "事業部長", "部長", "副本部長", "副部長", "部長代理", "次長", "統括",
            "室長", "所長", "支店長", "支社長", "センター長", "工場長", "director",
            "head of", "general manager", "vice president", "vp",
        ]
    ],
    *[
        ("job_level", pattern, str(int(_J.MANAGER)), 0)
        for pattern in [
            "課長", "グループ長", "グループリーダー", "マネージャー", "マネジャー",
            "マネージャ", "manager",
        ]
    ],
    *[
        ("job_level", pattern, str(int(_J.SUPERVISOR)), 0)
        for pattern in [
            "係長", "主任", "主査", "課長代理", "課長補佐", "チーフ", "チームリーダー",
            "リーダー", "supervisor", "team lead", "team leader", "assistant manager",
        ]
    ],
    *[
        ("job_level", pattern, str(int(_J.STAFF)), -1)
        for pattern in [
            "担当", "担当者", "一般", "スタッフ", "社員", "メンバー", "staff", "associate",
            "specialist", "analyst", "assistant", "coordinator", "representative",
        ]
    ],
    # --- 部署 (department) ----------------------------------------------------------------
    *[
        ("department", pattern, _D.IT.value, 0)
        for pattern in [
            "情報システム", "情シス", "システム部", "情報技術", "it", "dx", "デジタル",
            "information systems", "information technology",
        ]
    ],
    *[
        ("department", pattern, _D.SALES.value, 0)
        for pattern in ["営業", "販売", "セールス", "sales", "business development"]
    ],
    *[
        ("department", pattern, _D.MARKETING.value, 0)
        for pattern in ["マーケティング", "販促", "販売促進", "広報", "宣伝", "marketing", "pr"]
    ],
    *[
        ("department", pattern, _D.CORPORATE_PLANNING.value, 0)
        for pattern in ["経営企画", "事業企画", "経営戦略", "企画", "corporate planning", "strategy"]
    ],
    *[
        ("department", pattern, _D.EXECUTIVE.value, 0)
        for pattern in ["経営", "役員", "社長室", "executive", "board"]
    ],
    *[
        ("department", pattern, _D.ENGINEERING.value, 0)
        for pattern in ["開発", "研究", "技術", "設計", "r&d", "engineering", "development", "research"]
    ],
    *[
        ("department", pattern, _D.MANUFACTURING.value, 0)
        for pattern in ["製造", "生産", "工場", "品質", "manufacturing", "production", "quality"]
    ],
    *[
        ("department", pattern, _D.HR.value, 0)
        for pattern in ["人事", "採用", "労務", "人材", "human resources", "hr", "recruiting"]
    ],
    *[
        ("department", pattern, _D.FINANCE.value, 0)
        for pattern in ["経理", "財務", "会計", "finance", "accounting"]
    ],
    *[
        ("department", pattern, _D.GENERAL_AFFAIRS.value, 0)
        for pattern in ["総務", "法務", "管理部", "general affairs", "legal"]
    ],
    *[
        ("department", pattern, _D.CUSTOMER_SUPPORT.value, 0)
        for pattern in [
            "カスタマーサポート", "サポート", "カスタマーサクセス", "顧客", "support",
            "customer success",
        ]
    ],
]
# fmt: on
