"""Bots and machine traffic: crawler and scanner agents, machine opens, scanner clicks."""

from __future__ import annotations

import pytest

from tracking import bots

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.6367.60 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
APPLE_MAIL_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
OUTLOOK_DESKTOP = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
BING_PREVIEW = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.88 Safari/537.36 BingPreview/1.0b"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (GOOGLEBOT, bots.CRAWLER),
        (BINGBOT, bots.CRAWLER),
        ("python-requests/2.31.0", bots.SCANNER),
        ("curl/8.5.0", bots.SCANNER),
        ("Go-http-client/1.1", bots.SCANNER),
        ("Wget/1.21.4", bots.SCANNER),
        ("Barracuda Sentinel (EE)", bots.SCANNER),
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", bots.SCANNER),
        ("Mimecast URL Protect", bots.SCANNER),
        (BING_PREVIEW, bots.SCANNER),
        ("Mozilla/5.0 Trend Micro Email Security", bots.SCANNER),
        ("Symantec Email Security.cloud link scanner", bots.SCANNER),
        (CHROME, None),
        (HEADLESS_CHROME, None),
        (IPHONE_SAFARI, None),
        (APPLE_MAIL_MAC, None),
        (OUTLOOK_DESKTOP, None),
        ("", None),
    ],
)
def test_user_agents_are_classified(user_agent: str, expected: str | None) -> None:
    # when / then
    assert bots.classify_user_agent(user_agent) == expected


def test_a_huge_hostile_user_agent_is_classified_without_error() -> None:
    # given: a 100 kB header with script and a crawler name far beyond the clipped prefix
    user_agent = CHROME + "<script>alert(1)</script>" * 4000 + " Googlebot/2.1"

    # when / then: only the first 512 characters are matched
    assert bots.classify_user_agent(user_agent) is None
    assert bots.classify_user_agent("Googlebot/2.1 " + "x" * 100_000) == bots.CRAWLER


@pytest.mark.parametrize(
    ("user_agent", "ip", "expected"),
    [
        (GMAIL_PROXY, "66.249.84.10", "gmail_image_proxy"),
        (YAHOO_PROXY, "98.137.1.1", "yahoo_mail_proxy"),
        # Apple Mail Privacy Protection: the bare agent, from anywhere (Private Relay egress)
        ("Mozilla/5.0", "104.28.1.1", "apple_mpp"),
        ("Mozilla/5.0", None, "apple_mpp"),
        # From Apple's own network with no platform details
        ("Mozilla", "17.58.100.1", "apple_mpp"),
        # A real Apple device on Apple's network still says which platform it is
        (APPLE_MAIL_MAC, "17.58.100.1", None),
        (APPLE_MAIL_MAC, "203.0.113.5", None),
        (OUTLOOK_DESKTOP, "203.0.113.5", None),
        (CHROME, "not an address", None),
    ],
)
def test_machine_opens_are_recognised(
    user_agent: str, ip: str | None, expected: str | None
) -> None:
    # when / then
    assert bots.machine_open_reason(user_agent, ip) == expected
    assert bots.is_machine_open(user_agent, ip) is (expected is not None)


def test_an_open_within_two_seconds_of_sending_is_a_prefetch() -> None:
    # when / then: a gateway fetches images on delivery; a reader takes longer
    assert bots.machine_open_reason(CHROME, None, seconds_since_sent=0.8) == "prefetch_on_delivery"
    assert bots.machine_open_reason(CHROME, None, seconds_since_sent=45) is None
    assert bots.machine_open_reason(CHROME, None, seconds_since_sent=None) is None


@pytest.mark.parametrize(
    ("user_agent", "seconds", "recent", "expected"),
    [
        (CHROME, 1.5, 0, "fast_click"),
        (CHROME, 0.0, 0, "fast_click"),
        (CHROME, -3.0, 0, "fast_click"),  # the web server's clock a little behind the sender's
        (CHROME, 120.0, 0, None),
        (CHROME, None, 0, None),
        (CHROME, 120.0, 2, "click_burst"),
        (CHROME, 120.0, 1, None),
        ("python-requests/2.31", 3600.0, 0, bots.SCANNER),
        (GOOGLEBOT, None, 0, bots.CRAWLER),
        (HEADLESS_CHROME, 120.0, 0, None),
    ],
)
def test_scanner_clicks_are_recognised(
    user_agent: str, seconds: float | None, recent: int, expected: str | None
) -> None:
    # when / then
    assert (
        bots.is_scanner_click(
            user_agent=user_agent, seconds_since_delivery=seconds, clicks_in_last_seconds=recent
        )
        == expected
    )
