"""Local development: the embedded default (SQLite, Celery eager) with DEBUG on."""

from .base import *  # noqa: F403
from .base import env, mailer

DEBUG = env.bool("DEBUG", default=True)

# Mails (notifications) are printed where `make run` runs, unless EMAIL_URL names a server.
MAILERS = {"default": mailer(env("EMAIL_URL", default="consolemail://"))}
