"""Realistic demo data for a first look (``make run DEMO=1``). Safe to run more than once."""

from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from mapp.models import Role, User
from mapp.services import user_create
from prospects.models import Prospect

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
TITLES = [
    "情報システム部 部長",
    "営業企画課 課長",
    "マーケティング部 主任",
    "経営企画室",
    "代表取締役",
    "総務部",
]


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
        created = 0
        for index in range(60):
            company, domain = COMPANIES[index % len(COMPANIES)]
            email = f"prospect{index + 1:03d}@{domain}"
            _, was_created = Prospect.objects.get_or_create(
                email=email,
                defaults={
                    "last_name": rng.choice(LAST_NAMES),
                    "first_name": rng.choice(FIRST_NAMES),
                    "company_name": company,
                    "job_title": rng.choice(TITLES),
                    "assigned_user": sales[index % 2] if index % 3 else None,
                },
            )
            created += was_created
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({created} new prospects)."))
        self.stdout.write(
            "Demo sign-ins (password "
            f"{DEMO_PASSWORD}): " + ", ".join(email for email, *_ in DEMO_USERS)
        )
