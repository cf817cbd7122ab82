"""DKIM keys and DkimSigner: every signature is checked by dkimpy's verifier, the one the
signer's output must satisfy, against the DNS record emails.dkim generates."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.utils import timezone
from dkim.util import parse_tag_value

from emails.dkim import (
    DEFAULT_SIGNED_HEADERS,
    DkimError,
    DkimSigner,
    dkim_txt_record,
    generate_ed25519_key,
    generate_rsa_key,
    txt_strings,
    txt_zone_value,
)

DOMAIN = "news.example.jp"
SELECTOR = "mapp2026"

DnsFunc = Callable[..., bytes | None]


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, str]:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def ed25519_key() -> tuple[bytes, str]:
    return generate_ed25519_key()


def list_email(*, body_repeat: int = 60) -> bytes:
    """A list email as the send pipeline builds it: Japanese subject, text + HTML alternatives,
    one-click unsubscribe headers; about 20 KB with the default repeat."""
    message = EmailMessage(policy=SMTP)
    message["From"] = "株式会社サンプル マーケティング部 <info@news.example.jp>"
    message["To"] = "山田 太郎 <taro.yamada@customer.example.com>"
    message["Subject"] = "【ご案内】新製品ウェビナーのお知らせ（12月開催）"
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=DOMAIN)
    message["List-Unsubscribe"] = "<https://go.example.jp/u/abc123>, <mailto:u-abc123@example.jp>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Feedback-ID"] = "42:list-email:mapp"
    message["X-Mapp-Recipient"] = "r-981273"
    paragraph = "いつもお世話になっております。新製品のご紹介ウェビナーを開催いたします。  \n"
    message.set_content(paragraph * body_repeat)
    message.add_alternative(
        "<html><body>" + f"<p>{paragraph}</p>" * body_repeat + "</body></html>", subtype="html"
    )
    return message.as_bytes()


def dns_for(record: tuple[str, str]) -> DnsFunc:
    """dkimpy's dnsfunc: answers the one TXT name the record publishes, as a resolver would
    (the 255-byte strings joined back together)."""
    name, value = record

    def lookup(queried: bytes, timeout: int = 5) -> bytes | None:
        if queried.decode("ascii") == f"{name}.":
            return "".join(txt_strings(value)).encode("ascii")
        return None

    return lookup


def rsa_setup(rsa_key: tuple[bytes, str]) -> tuple[DkimSigner, DnsFunc]:
    private_pem, public_b64 = rsa_key
    signer = DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=private_pem)
    record = dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64)
    return signer, dns_for(record)


def test_rsa_signature_verifies_with_dkimpy(rsa_key: tuple[bytes, str]) -> None:
    # given a signer and the DNS record made from the same key
    signer, dnsfunc = rsa_setup(rsa_key)
    message = list_email()
    assert 18_000 < len(message) < 30_000

    # when the message is signed
    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    # then dkimpy verifies it, and the field says what was signed
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert header.endswith(b"\r\n")
    assert dkim.verify(header + message, dnsfunc=dnsfunc)
    fields = parse_tag_value(header.split(b":", 1)[1])
    assert fields[b"d"] == DOMAIN.encode()
    assert fields[b"s"] == SELECTOR.encode()
    signed = [name.strip() for name in fields[b"h"].split(b":")]
    assert signed == [name.lower() for name in DEFAULT_SIGNED_HEADERS]


def test_tampered_body_fails(rsa_key: tuple[bytes, str]) -> None:
    signer, dnsfunc = rsa_setup(rsa_key)
    message = list_email()
    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    headers, separator, body = message.partition(b"\r\n\r\n")
    tampered = headers + separator + body.replace(b"A", b"B", 1)

    assert tampered != message
    assert not dkim.verify(header + tampered, dnsfunc=dnsfunc)


def test_tampered_or_added_signed_header_fails(rsa_key: tuple[bytes, str]) -> None:
    # given a signed message without Reply-To (which is still in the signed list)
    signer, dnsfunc = rsa_setup(rsa_key)
    message = list_email()
    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)
    headers, separator, body = message.partition(b"\r\n\r\n")

    # when a relay changes the Subject, or adds a Reply-To
    changed_subject = b"Subject: =?utf-8?b?5YGH?=\r\n" + message.replace(b"Subject:", b"X-Old:", 1)
    added_reply_to = headers + b"\r\nReply-To: phisher@evil.example" + separator + body
    added_unsigned = headers + b"\r\nX-Spam-Score: 0.1" + separator + body

    # then both break the signature; a field outside the list does not
    assert not dkim.verify(header + changed_subject, dnsfunc=dnsfunc)
    assert not dkim.verify(header + added_reply_to, dnsfunc=dnsfunc)
    assert dkim.verify(header + added_unsigned, dnsfunc=dnsfunc)


def test_relaxed_canonicalisation_survives_relay_rewrites(rsa_key: tuple[bytes, str]) -> None:
    # given a message signed with LF line ends (as a template might produce)
    signer, dnsfunc = rsa_setup(rsa_key)
    message = list_email().replace(b"\r\n", b"\n")
    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    # when it travels with CRLF, its Subject refolded and trailing blanks added to lines
    on_the_wire = message.replace(b"\n", b"\r\n").replace(b"Subject: ", b"Subject:\r\n   ", 1)
    on_the_wire = on_the_wire.replace(b"==\r\n", b"==  \r\n") + b"\r\n\r\n"
    assert on_the_wire.count(b"==  \r\n") >= 2

    # then the signature still holds
    assert dkim.verify(header + on_the_wire, dnsfunc=dnsfunc)


def test_signature_from_a_4096_bit_key_with_a_split_txt_record() -> None:
    # given a key whose DNS value does not fit in one TXT string
    private_pem, public_b64 = generate_rsa_key(bits=4096)
    record = dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64)
    strings = txt_strings(record[1])
    assert len(strings) == 3
    assert all(len(part) <= 255 for part in strings)
    assert txt_zone_value(record[1]) == " ".join(f'"{part}"' for part in strings)

    signer = DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=private_pem)
    message = list_email(body_repeat=2)

    assert dkim.verify(
        signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS) + message,
        dnsfunc=dns_for(record),
    )


class _Ed25519VerifyKey:
    """What dkimpy's verifier expects of `nacl.signing.VerifyKey` (`.verify(data, signature)`),
    backed by `cryptography`: PyNaCl is not a dependency of this project, so dkimpy's own
    ed25519 key loader cannot run here. Everything else below is dkimpy's verification code."""

    def __init__(self, public_key: bytes) -> None:
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(public_key)

        self.signature_ok = False

    def verify(self, data: bytes, signature: bytes) -> None:
        # Recorded, not raised: dkimpy catches nacl's exception class by name, which does not
        # exist without PyNaCl.
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return
        self.signature_ok = True


class _DkimVerifierWithEd25519(dkim.DKIM):
    """dkimpy's DKIM verifier with only the ed25519 public-key loading replaced."""

    def verify_sig(self, sig: Any, include_headers: Any, sig_header: Any, dnsfunc: Any) -> Any:
        name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
        record = parse_tag_value(dnsfunc(name))
        assert record[b"k"] == b"ed25519"
        key = _Ed25519VerifyKey(base64.b64decode(record[b"p"]))
        self.pk, self.keysize, self.ktag, self.seqtlsrpt = key, 256, b"ed25519", False
        processed = self.verify_sig_process(sig, include_headers, sig_header, dnsfunc)
        return bool(processed) and key.signature_ok


def verify_ed25519(message: bytes, dnsfunc: DnsFunc) -> bool:
    try:
        return bool(_DkimVerifierWithEd25519(message).verify(dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def test_ed25519_signature_verifies(ed25519_key: tuple[bytes, str]) -> None:
    # given an ed25519 key: PKCS#8 private key, raw 32-byte public key as RFC 8463 publishes
    private_pem, public_b64 = ed25519_key
    assert len(base64.b64decode(public_b64)) == 32
    record = dkim_txt_record(
        selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64, algorithm="ed25519"
    )
    assert record[1] == f"v=DKIM1; k=ed25519; p={public_b64}"
    signer = DkimSigner(
        domain=DOMAIN, selector=SELECTOR, private_key_pem=private_pem, algorithm="ed25519-sha256"
    )
    message = list_email()

    # when signed
    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    # then dkimpy's verifier accepts it, and rejects a changed body or a changed header
    assert b"a=ed25519-sha256" in header
    assert verify_ed25519(header + message, dns_for(record))
    assert not verify_ed25519(
        header + message.replace(b"\r\n\r\n", b"\r\n\r\nP.S.\r\n", 1), dns_for(record)
    )
    assert not verify_ed25519(
        header + message.replace(b"Feedback-ID: 42", b"Feedback-ID: 43", 1), dns_for(record)
    )


def test_one_signer_shared_by_threads(rsa_key: tuple[bytes, str]) -> None:
    # given one signer and distinct messages
    signer, dnsfunc = rsa_setup(rsa_key)
    messages = [
        list_email(body_repeat=5).replace(b"taro.yamada", f"user{index}".encode())
        for index in range(32)
    ]
    results: dict[int, bytes] = {}

    def sign_some(indexes: range) -> None:
        for index in indexes:
            results[index] = signer.sign(messages[index], include_headers=DEFAULT_SIGNED_HEADERS)

    # when 8 threads sign at once
    threads = [
        threading.Thread(target=sign_some, args=(range(start, 32, 8),)) for start in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every signature belongs to its own message
    assert sorted(results) == list(range(32))
    for index, message in enumerate(messages):
        assert dkim.verify(results[index] + message, dnsfunc=dnsfunc)


def test_generated_keys_are_pkcs8_and_dkimpy_signs_with_them(rsa_key: tuple[bytes, str]) -> None:
    private_pem, public_b64 = rsa_key
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    public = serialization.load_der_public_key(base64.b64decode(public_b64))
    assert public.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]

    # dkimpy as shipped reads the same key, so the benchmark compares like with like
    message = list_email(body_repeat=2)
    shipped = dkim.sign(
        message,
        SELECTOR.encode(),
        DOMAIN.encode(),
        private_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(DEFAULT_SIGNED_HEADERS),
    )
    record = dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64)
    assert dkim.verify(shipped + message, dnsfunc=dns_for(record))


def test_japanese_domain_is_signed_in_its_ascii_form(rsa_key: tuple[bytes, str]) -> None:
    private_pem, public_b64 = rsa_key
    signer = DkimSigner(domain="メール.例え.jp", selector=SELECTOR, private_key_pem=private_pem)
    record = dkim_txt_record(selector=SELECTOR, domain="メール.例え.jp", public_key_b64=public_b64)
    message = list_email(body_repeat=2)

    header = signer.sign(message, include_headers=DEFAULT_SIGNED_HEADERS)

    assert signer.domain == "xn--4dkua4c.xn--r8jz45g.jp"
    assert record[0] == f"{SELECTOR}._domainkey.xn--4dkua4c.xn--r8jz45g.jp"
    assert dkim.verify(header + message, dnsfunc=dns_for(record))


@pytest.mark.parametrize(
    ("domain", "selector"),
    [
        ("example.jp\r\nBcc: victim@example.com", SELECTOR),
        ("example.jp; d=other.example", SELECTOR),
        (DOMAIN, "sel ector"),
        (DOMAIN, ""),
        ("-bad-.example.jp", SELECTOR),
    ],
)
def test_names_that_would_break_the_header_are_refused(
    rsa_key: tuple[bytes, str], domain: str, selector: str
) -> None:
    with pytest.raises(DkimError):
        DkimSigner(domain=domain, selector=selector, private_key_pem=rsa_key[0])
    with pytest.raises(DkimError):
        dkim_txt_record(selector=selector, domain=domain, public_key_b64=rsa_key[1])


def test_keys_that_do_not_fit_the_algorithm_are_refused(
    rsa_key: tuple[bytes, str], ed25519_key: tuple[bytes, str]
) -> None:
    with pytest.raises(DkimError, match="RSA"):
        DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=ed25519_key[0])
    with pytest.raises(DkimError, match="ed25519"):
        DkimSigner(
            domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_key[0], algorithm="ed25519-sha256"
        )
    with pytest.raises(DkimError, match="cannot be read"):
        DkimSigner(
            domain=DOMAIN, selector=SELECTOR, private_key_pem=b"-----BEGIN PRIVATE KEY-----\nxx"
        )
    # 1024 bits is the floor receivers still accept, so it is the floor here too
    smallest = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(  # noqa: S505
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=smallest).domain == DOMAIN
    with pytest.raises(DkimError, match="at least 1024"):
        generate_rsa_key(bits=512)


def test_header_lists_dkim_forbids_are_refused(rsa_key: tuple[bytes, str]) -> None:
    signer, _ = rsa_setup(rsa_key)
    message = list_email(body_repeat=1)

    with pytest.raises(DkimError, match="From"):
        signer.sign(message, include_headers=[b"To", b"Subject"])
    with pytest.raises(DkimError, match="return-path"):
        signer.sign(message, include_headers=[b"From", b"Return-Path"])
    with pytest.raises(DkimError, match="cannot be signed"):
        signer.sign(b"From: a@example.jp\r\n\x01bad header\r\n\r\nbody", include_headers=[b"From"])


def test_txt_record_rejects_a_public_key_that_is_not_base64(rsa_key: tuple[bytes, str]) -> None:
    with pytest.raises(DkimError, match="base64"):
        dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64="not base64!")
    with pytest.raises(DkimError, match="key type"):
        dkim_txt_record(
            selector=SELECTOR,
            domain=DOMAIN,
            public_key_b64=rsa_key[1],
            algorithm="dsa",  # type: ignore[arg-type]
        )
    # whitespace from a copied key is tolerated
    spaced = rsa_key[1][:40] + "\n  " + rsa_key[1][40:]
    assert dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=spaced)[1].endswith(
        rsa_key[1]
    )
