"""Figure 7's load: the demo users browsing the home page and a Revisions tab.

Run by tests/bench/fig_load.py (`locust --headless -u 20 -r 5 -t 30s`) against gunicorn
on 127.0.0.1. The harness signs the four demo users in through the login page first and
hands their session cookies over in BENCH_SESSIONS; simulated users take them in turn.
Signing in hashes a password (slow by design, seconds on a busy machine), so doing it
inside the 30 s window would measure the password hasher, not the pages.
BENCH_INTEGRATION is the integration whose Revisions tab they open (every demo user can
see it).
"""

from __future__ import annotations

import itertools
import os

from locust import HttpUser, between, task

_sessions = itertools.cycle(os.environ.get("BENCH_SESSIONS", "").split(","))


class DemoUser(HttpUser):
    # A person reading pages, not a tight loop: think time between requests.
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.cookies.set("sessionid", next(_sessions))
        self.tab = f"/integrations/{os.environ['BENCH_INTEGRATION']}/revisions/"

    @task
    def home(self) -> None:
        with self.client.get("/", name="home page", catch_response=True) as response:
            if "/login/" in response.url:
                response.failure("not signed in")

    @task
    def revisions_tab(self) -> None:
        with self.client.get(self.tab, name="revisions tab", catch_response=True) as response:
            if "/login/" in response.url:
                response.failure("not signed in")
