"""Bots and machine traffic: flagged and stored, but kept out of scoring, triggers and reports.

Three questions, each answered from tables below so a new agent is one line:

* :func:`classify_user_agent` — is this a known crawler or a link scanner / security gateway?
* :func:`machine_open_reason` / :func:`is_machine_open` — was this email "open" a proxy fetching
  images on the reader's behalf (Apple Mail Privacy Protection, Gmail's and Yahoo's image
  proxies, a gateway prefetching on delivery) rather than a person reading?
* :func:`is_scanner_click` — was this email click a link scanner (known agent, a click seconds
  after delivery, many links of one email clicked at once)?

Crawlers come from the maintained ``crawlerdetect`` list (the PHP CrawlerDetect patterns, ported).
Two deliberate departures from it: ``HeadlessChrome`` is a human here (our own browser tests and
some real tools run headless Chromium as a visitor), and Outlook's desktop client, which fetches
images itself when the reader opens a message, is a mail client, not a crawler.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from crawlerdetect import CrawlerDetect

CRAWLER = "crawler"
SCANNER = "scanner"

# Longer user agents are clipped before matching: every pattern we know matches within the first
# few hundred characters, and a hostile 100 kB header must not cost a regex pass over it.
MAX_USER_AGENT_LENGTH = 512

# Link scanners and security gateways that follow or fetch every link of a delivered message
# (checked before the crawler list, so they are reported as scanners, not crawlers).
SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    (r"Barracuda", "barracuda"),
    (r"Proofpoint", "proofpoint"),
    (r"Mimecast", "mimecast"),
    # Microsoft Defender for Office 365 Safe Links / Outlook link previews.
    (r"BingPreview|MicrosoftPreview|SafeLinks", "microsoft_safe_links"),
    (r"Trend ?Micro|TMUFE", "trend_micro"),
    (r"Symantec|Broadcom|MessageLabs", "symantec"),
    (r"Forcepoint|Websense", "forcepoint"),
    (r"Cisco ?Email|IronPort", "cisco"),
    (r"Sophos", "sophos"),
    (r"Fortinet|FortiMail|FortiGuard", "fortinet"),
    (r"Cloudmark", "cloudmark"),
    (r"AppRiver|\bZix", "appriver"),
    (r"Hornet ?Security", "hornetsecurity"),
    # HTTP libraries and command-line tools: a person clicks with a browser.
    (r"python-requests|python-urllib|python-httpx|aiohttp", "python_http_client"),
    (r"\bcurl/", "curl"),
    (r"^Wget/", "wget"),
    (r"Go-http-client", "go_http_client"),
    (r"^Java/|Apache-HttpClient|okhttp", "java_http_client"),
    (r"libwww-perl|^Ruby\b|Faraday", "script_http_client"),
)
_SCANNER_PATTERNS = tuple(
    (re.compile(pattern, re.IGNORECASE), name) for pattern, name in SCANNER_AGENTS
)

# Agents crawlerdetect lists that are people for us (see the module docstring): headless Chrome is
# matched as plain Chrome, and Outlook's own clients are mail clients.
HEADLESS_CHROME = re.compile(r"HeadlessChrome/", re.IGNORECASE)
MAIL_CLIENT_AGENTS = re.compile(r"Microsoft Outlook|Outlook-iOS|Outlook-Android", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _crawler_match(user_agent: str) -> str | None:
    # A fresh CrawlerDetect per distinct agent: its instance keeps the last match in attributes,
    # which threads must not share; the lru_cache makes repeats free (≈ 0.1 ms per new agent).
    detector = CrawlerDetect()
    if detector.is_crawler(user_agent):
        return detector.get_matches() or CRAWLER
    return None


def _clip(user_agent: str | None) -> str:
    return (user_agent or "").strip()[:MAX_USER_AGENT_LENGTH]


def scanner_name(user_agent: str | None) -> str | None:
    """Which known link scanner / HTTP tool the agent names, if any."""
    agent = _clip(user_agent)
    for pattern, name in _SCANNER_PATTERNS:
        if pattern.search(agent):
            return name
    return None


def classify_user_agent(user_agent: str | None) -> str | None:
    """``"scanner"``, ``"crawler"``, or None for a person's browser or mail client.

    An empty agent is None: it is not a *known* crawler, and the Django test client and some
    privacy tools send none; behaviour (timing, bursts) still catches scripted traffic.
    """
    agent = _clip(user_agent)
    if not agent:
        return None
    if scanner_name(agent) is not None:
        return SCANNER
    if MAIL_CLIENT_AGENTS.search(agent):
        return None
    if _crawler_match(HEADLESS_CHROME.sub("Chrome/", agent)) is not None:
        return CRAWLER
    return None


# --- machine opens -------------------------------------------------------------------------------

# Image proxies that fetch the tracking pixel themselves; the agent names them.
# - Gmail: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com
#   GoogleImageProxy)" — Gmail serves all images through its proxy, so IP and agent are Google's
#   (listed as such in crawlerdetect's own patterns).
# - Yahoo Mail: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html".
MACHINE_OPEN_AGENTS: tuple[tuple[str, str], ...] = (
    (r"GoogleImageProxy", "gmail_image_proxy"),
    (r"YahooMailProxy", "yahoo_mail_proxy"),
    (r"Outlook-?Image-?Proxy|OutlookImageProxy", "outlook_image_proxy"),
)
_MACHINE_OPEN_PATTERNS = tuple(
    (re.compile(pattern, re.IGNORECASE), name) for pattern, name in MACHINE_OPEN_AGENTS
)

# Apple Mail Privacy Protection (iOS 15+, macOS 12+): Apple's servers download every remote image
# of a message through its proxies as soon as the message reaches the device, whether or not it
# is read (SocketLabs, "Identifying Apple MPP opens"; Word to the Wise, "Apple MPP reporting and
# geolocation", 2021: the proxies are iCloud Private Relay's egress). Those fetches carry the bare
# agent "Mozilla/5.0" with no platform details, which no real mail client or browser sends.
APPLE_MPP_AGENTS = re.compile(r"^Mozilla/5\.0$", re.IGNORECASE)
# Apple's own network (17.0.0.0/8, ARIN-registered to Apple). A fetch from it whose agent names no
# platform — no "(…)" details — is Apple's prefetch even if the bare agent changes.
APPLE_NETWORKS = (ipaddress.IPv4Network("17.0.0.0/8"),)
# Security gateways fetch a message's images on delivery; nobody reads a message this fast.
OPEN_PREFETCH_SECONDS = 2.0
# Clocks of the sending worker and the web server may differ a little: a slightly negative
# interval is still "immediately".
CLOCK_SKEW_SECONDS = 60.0


def _in_networks(ip: str | None, networks: tuple[ipaddress.IPv4Network, ...]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def machine_open_reason(
    user_agent: str | None, ip: str | None, *, seconds_since_sent: float | None = None
) -> str | None:
    """Why this pixel fetch is a machine's, or None if it looks like a person opening the mail."""
    agent = _clip(user_agent)
    for pattern, name in _MACHINE_OPEN_PATTERNS:
        if pattern.search(agent):
            return name
    if APPLE_MPP_AGENTS.match(agent):
        return "apple_mpp"
    if _in_networks(ip, APPLE_NETWORKS) and "(" not in agent:
        return "apple_mpp"
    if (
        seconds_since_sent is not None
        and -CLOCK_SKEW_SECONDS <= seconds_since_sent < OPEN_PREFETCH_SECONDS
    ):
        return "prefetch_on_delivery"
    return None


def is_machine_open(
    user_agent: str | None, ip: str | None, *, seconds_since_sent: float | None = None
) -> bool:
    return machine_open_reason(user_agent, ip, seconds_since_sent=seconds_since_sent) is not None


# --- scanner clicks ------------------------------------------------------------------------------

# A click this soon after delivery is a gateway following the link, not a reader: a person needs
# longer to see the message, open it and choose a link.
SCANNER_CLICK_SECONDS = 5.0
# "All links clicked at once": this many *other* clicks on the same email by the same recipient
# within CLICK_BURST_WINDOW_SECONDS make this one a scanner's too (the first of a burst cannot
# be known as such when it arrives and stays counted as human).
CLICK_BURST_WINDOW_SECONDS = 3
CLICK_BURST_THRESHOLD = 2


def is_scanner_click(
    *, user_agent: str | None, seconds_since_delivery: float | None, clicks_in_last_seconds: int
) -> str | None:
    """Why this email click is a scanner's (``"crawler"``, ``"scanner"``, ``"fast_click"``,
    ``"click_burst"``), or None for a person."""
    kind = classify_user_agent(user_agent)
    if kind is not None:
        return kind
    if (
        seconds_since_delivery is not None
        and -CLOCK_SKEW_SECONDS <= seconds_since_delivery < SCANNER_CLICK_SECONDS
    ):
        return "fast_click"
    if clicks_in_last_seconds >= CLICK_BURST_THRESHOLD:
        return "click_burst"
    return None
