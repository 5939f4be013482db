"""The SSRF guard refuses inward targets unless allowed (name resolution is injected)."""

from __future__ import annotations

import pytest

from runs.engine import BlockedURL
from runs.netguard import make_url_guard

NAMES = {
    "shop.example.com": ["93.184.216.34"],
    "erp.internal": ["10.0.0.5"],
    "sneaky.example.com": ["93.184.216.34", "192.168.1.10"],
    "metadata.example.com": ["169.254.169.254"],
    "v6.example.com": ["::ffff:127.0.0.1"],
}


def resolve(host, port):
    if host not in NAMES:
        raise OSError("Name or service not known")
    return NAMES[host]


def guard(**kw):
    kw.setdefault("allow_private", False)
    return make_url_guard(resolve=resolve, **kw)


@pytest.mark.parametrize(
    "url",
    ["https://shop.example.com/orders?page=2", "http://93.184.216.34:8080/x"],
)
def test_public_targets_pass(url):
    guard()(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/demo-systems/", "loopback"),
        ("http://localhost/", "does not resolve"),
        ("http://erp.internal/orders", "private"),
        ("http://sneaky.example.com/", "private"),
        ("http://metadata.example.com/latest/meta-data", "link-local"),
        ("http://169.254.169.254/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://v6.example.com/", "loopback"),
        ("http://100.64.1.1/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://shop.example.com/", "only http and https"),
    ],
)
def test_inward_targets_are_refused_in_production(url, why):
    with pytest.raises(BlockedURL, match=why):
        guard()(url)


def test_allowing_private_lets_loopback_and_private_through_but_not_link_local():
    local = guard(allow_private=True)
    local("http://127.0.0.1:8000/demo-systems/shop")
    local("http://erp.internal/orders")
    with pytest.raises(BlockedURL, match="link-local"):
        local("http://169.254.169.254/")


def test_a_listed_host_is_allowed_whatever_it_resolves_to():
    listed = guard(allowed_hosts=["ERP.internal", " 169.254.169.254 "])
    listed("http://erp.internal/orders")
    listed("http://169.254.169.254/")
    with pytest.raises(BlockedURL, match="ILM_RUN_ALLOWED_HOSTS"):
        listed("http://sneaky.example.com/")


def test_one_guard_resolves_each_host_once_and_keeps_refusing_what_it_refused():
    asked = []
    names = dict(NAMES)

    def counting(host, port):
        asked.append((host, port))
        if host not in names:
            raise OSError("Name or service not known")
        return names[host]

    check = make_url_guard(allow_private=False, resolve=counting)
    for page in range(1, 6):
        check(f"https://shop.example.com/orders?page={page}")
    for _ in range(2):
        with pytest.raises(BlockedURL, match="private address"):
            check("http://sneaky.example.com/x")
    assert asked == [("shop.example.com", 443), ("sneaky.example.com", 80)]
    check("http://shop.example.com/orders")  # another port: asked again
    assert asked[-1] == ("shop.example.com", 80)


def test_a_name_that_did_not_resolve_is_asked_again_on_the_next_request():
    answers = [OSError("temporary failure"), ["93.184.216.34"]]

    def flaky(host, port):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    check = make_url_guard(allow_private=False, resolve=flaky)
    with pytest.raises(BlockedURL, match="does not resolve"):
        check("https://shop.example.com/orders")
    check("https://shop.example.com/orders")
    assert answers == []
