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

        from django.db.models.signals import post_delete, post_save

        from .models import Notification
        from .notifications import notification_row_changed

        for signal in (post_save, post_delete):
            signal.connect(
                notification_row_changed,
                sender=Notification,
                dispatch_uid=f"runs-unread-{signal is post_save}",
            )
