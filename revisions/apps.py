from django.apps import AppConfig


class RevisionsConfig(AppConfig):
    name = "revisions"
    verbose_name = "Revisions"

    def ready(self) -> None:
        from . import approvals

        approvals.connect_signals()
