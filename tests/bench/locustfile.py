"""Figure 7's load: the demo users signing in, then browsing the home page and a Revisions tab.

Run by tests/bench/fig_load.py (`locust --headless -u 20 -r 5 -t 30s`) against gunicorn
on 127.0.0.1. Users take the demo accounts in turn; BENCH_INTEGRATION is the integration
whose Revisions tab they open (every demo user can see it). Signing in hashes a password
(deliberately slow), so the statistics start again once every user has signed in: the
figures are of browsing, not of the sign-in burst.
"""

from __future__ import annotations

import itertools
import os
import re

from locust import HttpUser, between, task

DEMO_USERS = [
    ("admin", "ilm-demo-admin"),
    ("approver", "ilm-demo-approver"),
    ("developer", "ilm-demo-developer"),
    ("monitor", "ilm-demo-monitor"),
]
_accounts = itertools.cycle(DEMO_USERS)
_signed_in = 0
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class DemoUser(HttpUser):
    # A person reading pages, not a tight loop: think time between requests.
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        username, password = next(_accounts)
        page = self.client.get("/login/", name="login form")
        match = _CSRF.search(page.text)
        token = match.group(1) if match else self.client.cookies.get("csrftoken", "")
        response = self.client.post(
            "/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.host}/login/"},
            name="sign in",
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise RuntimeError(f"sign-in as {username} answered {response.status_code}")
        self.tab = f"/integrations/{os.environ['BENCH_INTEGRATION']}/revisions/"
        global _signed_in
        _signed_in += 1
        runner = self.environment.runner
        if runner is not None and _signed_in == runner.target_user_count:
            runner.stats.reset_all()

    @task
    def home(self) -> None:
        self.client.get("/", name="home page")

    @task
    def revisions_tab(self) -> None:
        self.client.get(self.tab, name="revisions tab")
