"""Hypothesis profiles, picked by the environment variable HYPOTHESIS_PROFILE.

- `full` (the default; `make test` and CI): each property runs its own full count of
  examples, as its test declares it (`examples(500)` is 500).
- `fast` (`make test-fast`): at most FAST_EXAMPLES examples a property, for a quick loop.

tests/conftest.py imports this module, so the profile is loaded before any test runs. A
test that names its own count takes it through `examples()`, which the fast profile caps;
a test that names none takes the profile's default.
"""

from __future__ import annotations

import os

from hypothesis import settings

FAST_EXAMPLES = 50
PROFILES = ("full", "fast")

settings.register_profile("full")
settings.register_profile("fast", max_examples=FAST_EXAMPLES)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or "full"
if PROFILE not in PROFILES:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: use one of {', '.join(PROFILES)}.")
settings.load_profile(PROFILE)


def examples(full: int) -> int:
    """A property's example count: `full` in the full profile, at most FAST_EXAMPLES in the
    fast one."""
    return min(full, FAST_EXAMPLES) if PROFILE == "fast" else full
