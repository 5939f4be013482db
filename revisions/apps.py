from django.apps import AppConfig


class RevisionsConfig(AppConfig):
    name = "revisions"
    verbose_name = "Revisions"

    def ready(self) -> None:
        from . import approvals, context_processors

        approvals.connect_signals()
        context_processors.connect_signals()
