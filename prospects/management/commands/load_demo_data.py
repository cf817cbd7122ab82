"""Realistic demo data for a first look (``make run DEMO=1``). Safe to run more than once."""

from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from mapp.models import Role, User
from mapp.services import user_create
from prospects.models import AssignmentGroup, Prospect, ProspectList
from prospects.services import (
    Classifier,
    CompanyCache,
    list_create,
    prospect_create,
    prospects_assign,
)

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo accounts on purpose

DEMO_USERS = [
    ("marketing@demo.example.jp", "佐藤", "美咲", "マーケティング部 主任", Role.MARKETING),
    ("manager@demo.example.jp", "鈴木", "健一", "営業部 部長", Role.SALES_MANAGER),
    ("sales1@demo.example.jp", "高橋", "翔太", "営業部", Role.SALES),
    ("sales2@demo.example.jp", "田中", "陽菜", "営業部", Role.SALES),
]

LAST_NAMES = [
    "山田",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山本",
    "渡辺",
    "伊藤",
    "松本",
    "井上",
    "木村",
    "林",
]
FIRST_NAMES = [
    "太郎",
    "花子",
    "大輔",
    "由美",
    "拓也",
    "彩",
    "誠",
    "真由美",
    "直樹",
    "恵",
    "亮",
    "さくら",
]
COMPANIES = [
    ("株式会社サンプル商事", "sample-shoji.co.jp"),
    ("ミライ工業株式会社", "mirai-kogyo.jp"),
    ("(株)ネクストソリューションズ", "next-solutions.jp"),
    ("有限会社青空デザイン", "aozora-design.jp"),
    ("東京データシステム株式会社", "tokyo-data.co.jp"),
    ("株式会社さくらクラウド研究所", "sakura-lab.jp"),
]
TITLES = ["部長", "課長", "主任", "担当", "代表取締役", "取締役", "係長", "マネージャー"]
DEPARTMENTS = ["情報システム部", "営業部", "マーケティング部", "経営企画室", "総務部", "製造部"]
INDUSTRIES = ["IT", "製造", "金融", "小売", "建設"]
DEMO_LIST = "IT・製造 課長以上 (従業員100名以上)"
DEMO_CRITERIA = {
    "match": "all",
    "conditions": [
        {
            "match": "any",
            "conditions": [
                {"subject": "field", "field": "industry", "operator": "equals", "value": "IT"},
                {"subject": "field", "field": "industry", "operator": "equals", "value": "製造"},
            ],
        },
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
        {"subject": "field", "field": "employee_count", "operator": "gte", "value": 100},
    ],
}


class Command(BaseCommand):
    help = "Load demo users and prospects with Japanese names and companies."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(2026)  # noqa: S311 - demo data, not security
        users = {}
        for email, last, first, title, role_slug in DEMO_USERS:
            existing = User.objects.filter(email=email).first()
            users[email] = existing or user_create(
                actor=None,
                email=email,
                role=Role.objects.get(slug=role_slug),
                last_name=last,
                first_name=first,
                job_title=title,
                password=DEMO_PASSWORD,
                send_invitation=False,
            )
        sales = [users["sales1@demo.example.jp"], users["sales2@demo.example.jp"]]
        classifier = Classifier.load()
        companies = CompanyCache()
        created = 0
        for index in range(60):
            company, domain = COMPANIES[index % len(COMPANIES)]
            email = f"prospect{index + 1:03d}@{domain}"
            if Prospect.objects.filter(email=email).exists():
                continue
            prospect = prospect_create(
                actor=None,
                data={
                    "email": email,
                    "last_name": rng.choice(LAST_NAMES),
                    "first_name": rng.choice(FIRST_NAMES),
                    "company_name": company,
                    "department": rng.choice(DEPARTMENTS),
                    "job_title": rng.choice(TITLES),
                    "industry": rng.choice(INDUSTRIES),
                    "employee_count": rng.choice([15, 80, 120, 300, 1200, 5000]),
                    "prefecture": rng.choice(["東京都", "大阪府", "神奈川県", "愛知県", "福岡県"]),
                    "source": rng.choice(["展示会", "Webフォーム", "セミナー", "名刺交換"]),
                },
                classifier=classifier,
                companies=companies,
                refresh_lists=False,
            )
            if index % 3:
                prospects_assign(actor=None, prospect_ids=[prospect.pk], user=sales[index % 2])
            created += 1
        group, _created = AssignmentGroup.objects.get_or_create(name="東日本営業")
        group.members.set(sales)
        if not ProspectList.objects.filter(name=DEMO_LIST).exists():
            list_create(actor=None, name=DEMO_LIST, is_dynamic=True, criteria=DEMO_CRITERIA)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({created} new prospects)."))
        self.stdout.write(
            "Demo sign-ins (password "
            f"{DEMO_PASSWORD}): " + ", ".join(email for email, *_ in DEMO_USERS)
        )
