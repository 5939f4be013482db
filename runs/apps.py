from django.apps import AppConfig


class RunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"
    verbose_name = "Flow runs"

    def ready(self) -> None:
        # revisions sends the ILM event (audit defines it); runs listens: a merge may
        # offer to retry the touched flows' open errors (runs.errors.errors_offer_retry).
        from audit.signals import revision_event

        from .errors import on_revision_event

        revision_event.connect(on_revision_event, dispatch_uid="runs-retry-offer")
