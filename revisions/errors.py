"""Refusals of the revision engine. Each says what to do next; the API maps `http_status`."""


class RevisionError(Exception):
    http_status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OperationInProgress(RevisionError):
    """Another pull, merge or revert is open on the integration."""


class StaleReview(RevisionError):
    """The target changed since the pull was computed."""


class UnresolvedConflicts(RevisionError):
    """A merge was asked for while conflicts are unresolved."""


class NothingToRevert(RevisionError):
    """The integration is already in the state asked for."""


class InvalidState(RevisionError):
    """The revision is not in a status that allows this."""


class ApprovalRequired(RevisionError):
    """Merging into production needs an approval first."""

    http_status = 403
