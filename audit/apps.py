from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from . import capture, selectors

        capture.connect()
        # Users are not audited: the global list's cached username choices are dropped here.
        user = get_user_model()
        post_save.connect(selectors.forget_facets, sender=user, dispatch_uid="audit-facets-user")
        post_delete.connect(selectors.forget_facets, sender=user, dispatch_uid="audit-facets-user")
