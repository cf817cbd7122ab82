"""Benchmark: DKIM signatures per second, dkimpy as shipped against emails.dkim.DkimSigner.

    .venv/bin/python bench/dkim_sign.py [--seconds S] [--repeat R] [--bits B] [--size KB]

One list email of about 20 KB (Japanese subject and body, text + HTML alternatives, the
one-click unsubscribe headers) is signed over and over with one RSA-2048 key and the headers of
``emails.dkim.DEFAULT_SIGNED_HEADERS``, relaxed/relaxed, by:

  * the baseline: ``dkim.sign(…)`` of dkimpy as shipped — it parses the PEM key on every call and
    does the RSA exponentiation in pure Python;
  * the app: ``DkimSigner.sign(…)`` — dkimpy's parsing, canonicalisation and header hashing, the
    key parsed once and the RSA step in OpenSSL (``cryptography``);  target ≥ 300 signatures/s
    on one core.

Both run in this process, one after the other, ``--repeat`` times each for ``--seconds``
(best round kept, after a warm-up), so the ratio is measured on the same machine in the same
run. For scale it also prints the floor (OpenSSL signing a precomputed digest, nothing else)
and DkimSigner with one signer shared by as many threads as there are cores. Before timing,
one signature of each kind is checked with dkimpy's own verifier. No database, no network.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import dkim  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed  # noqa: E402

from emails.dkim import (  # noqa: E402
    DEFAULT_SIGNED_HEADERS,
    DkimSigner,
    dkim_txt_record,
    generate_rsa_key,
)

DOMAIN = "news.example.jp"
SELECTOR = "bench"
TARGET_SIGNATURES_PER_SECOND = 300
WARM_UP_SECONDS = 0.5


def list_email(size_kb: int) -> bytes:
    """A list email as the send pipeline builds it, padded to about `size_kb` KB."""
    message = EmailMessage(policy=SMTP)
    message["From"] = "株式会社サンプル マーケティング部 <info@news.example.jp>"
    message["To"] = "山田 太郎 <taro.yamada@customer.example.com>"
    message["Subject"] = "【ご案内】新製品ウェビナーのお知らせ（12月開催）"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=DOMAIN)
    message["List-Unsubscribe"] = "<https://go.example.jp/u/abc123>, <mailto:u-abc123@example.jp>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Feedback-ID"] = "42:list-email:mapp"
    paragraph = "いつもお世話になっております。新製品のご紹介ウェビナーを開催いたします。\n"
    # Each repeat adds ≈ 330 bytes once base64-encoded in both alternatives.
    repeat = max(1, size_kb * 1024 // 330)
    message.set_content(paragraph * repeat)
    message.add_alternative(
        "<html><body>" + f"<p>{paragraph}</p>" * repeat + "</body></html>", subtype="html"
    )
    return message.as_bytes()


def rate(work: Callable[[], object], seconds: float, repeat: int) -> float:
    """Best calls-per-second over `repeat` rounds of `seconds`, after a warm-up."""
    deadline = time.perf_counter() + WARM_UP_SECONDS
    while time.perf_counter() < deadline:
        work()
    best = 0.0
    for _round in range(repeat):
        calls = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            work()
            calls += 1
        best = max(best, calls / (time.perf_counter() - started))
    return best


def threaded_rate(work: Callable[[], object], seconds: float, threads: int) -> float:
    """Calls per second of `threads` threads calling `work` for `seconds`."""
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            work()
            counts[index] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def _line(label: str, per_second: float, baseline: float | None = None) -> str:
    ratio = f"{per_second / baseline:7.1f}x dkimpy" if baseline else ""
    return f"  {label:<44} {per_second:9,.0f} signatures/s  {1000 / per_second:7.2f} ms  {ratio}"


def run(arguments: argparse.Namespace) -> int:
    private_pem, public_b64 = generate_rsa_key(bits=arguments.bits)
    record = dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64)
    message = list_email(arguments.size)
    include_headers = list(DEFAULT_SIGNED_HEADERS)
    signer = DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=private_pem)

    def shipped() -> bytes:
        return dkim.sign(
            message,
            SELECTOR.encode(),
            DOMAIN.encode(),
            private_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include_headers,
        )

    def app() -> bytes:
        return signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    digest = hashlib.sha256(message).digest()

    def floor() -> bytes:
        return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return record[1].encode() if name.decode() == f"{record[0]}." else None

    for label, sign in (("dkimpy", shipped), ("DkimSigner", app)):
        if not dkim.verify(sign() + message, dnsfunc=dnsfunc):
            print(f"{label}: its signature does not verify with dkimpy — not timing it")
            return 1

    cores = os.cpu_count() or 1
    print(
        f"\nmapp bench: DKIM signing of one {len(message) / 1024:.1f} KB list email, "
        f"RSA-{arguments.bits}, relaxed/relaxed, {len(include_headers)} signed header names; "
        f"best of {arguments.repeat} × {arguments.seconds:g} s; {cores} cores"
    )
    print("  (both signatures verified with dkim.verify before timing)\n")
    shipped_rate = rate(shipped, arguments.seconds, arguments.repeat)
    app_rate = rate(app, arguments.seconds, arguments.repeat)
    floor_rate = rate(floor, arguments.seconds, arguments.repeat)
    print(_line("baseline: dkimpy as shipped (dkim.sign)", shipped_rate))
    print(_line("app: DkimSigner.sign, one thread", app_rate, shipped_rate))
    print(_line("floor: OpenSSL RSA sign of a digest only", floor_rate, shipped_rate))
    if cores > 1:
        threaded = threaded_rate(app, arguments.seconds, cores)
        print(_line(f"DkimSigner.sign, {cores} threads, one signer", threaded, shipped_rate))
    print(
        f"\n  DkimSigner runs at {100 * app_rate / floor_rate:.0f}% of the floor's rate "
        "(the rest: message parsing, canonicalisation, hashing)"
    )
    verdict = "PASS" if app_rate >= TARGET_SIGNATURES_PER_SECOND else "MISS"
    print(
        f"  target ≥ {TARGET_SIGNATURES_PER_SECOND} signatures/s on one core: "
        f"{app_rate:,.0f} signatures/s ({app_rate / shipped_rate:.1f}x dkimpy)  {verdict}"
    )
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one timed round")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per signer")
    parser.add_argument("--bits", type=int, default=2048, help="RSA key size")
    parser.add_argument("--size", type=int, default=20, help="message size in KB")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
