"""Every page carries a strict Content-Security-Policy and a Permissions-Policy, and no
template holds inline script, inline event handlers or inline styles the policy would block."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize("path", ["/", "/login/", "/account/", "/api/v1/integrations"])
def test_pages_and_api_answers_carry_the_policies(dev_client, path):
    response = dev_client.get(path)
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    # A nonce is added only when a page uses one, which no ILM page needs.
    assert re.search(r"script-src 'self'( 'nonce-[^']+')?;", policy)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


def test_each_response_gets_its_own_nonce(dev_client):
    first = dev_client.get("/api/v1/docs")["Content-Security-Policy"]
    second = dev_client.get("/api/v1/docs")["Content-Security-Policy"]
    assert re.search(r"'nonce-[^']+'", first).group() != re.search(r"'nonce-[^']+'", second).group()


def test_templates_hold_nothing_inline_that_the_policy_blocks():
    found = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)[^>]*>",  # inline script
            r"<style(?![^>]*\bnonce=)[^>]*>",  # inline <style> without the nonce
            r"\sstyle=\"",  # style attributes
            r"\son[a-z]+=\"",  # event handler attributes
            r"javascript:",  # script in URLs
            r"hx-trigger=\"(?:[^\"]*,\s*)?[\w:.-]+\[",  # htmx evaluates event[filters] as script
        ):
            found += [f"{template.relative_to(TEMPLATES)}: {m}" for m in re.findall(pattern, text)]
    assert found == []
