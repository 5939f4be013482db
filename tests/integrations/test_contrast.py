"""Text stays readable: every text colour token on every background it is used on reaches
WCAG AA (4.5:1 for body text)."""

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "static" / "css" / "app.css").read_text()
TOKENS = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})\b", CSS))

PAIRS = [
    *((text, bg) for text in ("text", "muted", "faint") for bg in ("bg", "surface", "surface-2")),
    ("warning", "warning-soft"),
    ("warning", "conflict"),
    ("info", "info-soft"),
    ("success", "success-soft"),
    ("danger", "danger-soft"),
    ("primary", "primary-soft"),
]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_of_a_known_pair():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_tokens_reach_wcag_aa_on_their_backgrounds(text, background):
    ratio = contrast(TOKENS[text], TOKENS[background])
    assert ratio >= 4.5, f"--{text} on --{background} is {ratio:.2f}:1"
