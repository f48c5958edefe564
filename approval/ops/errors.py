"""The one family of refusals every operation raises.

A refusal carries the HTTP status it stands for, a message meant for the person who asked, and,
when one field of their input is at fault, that field's name. Pages put the message beside the
field (or in a flash), the API turns it into problem+json with `errors[]`, the CLI prints it:
each rule is written once, in the operation, and each front end only renders it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from approval.models import Clip, ClipStatus


class Refused(Exception):
    """A step that cannot be carried out; nothing it began may be kept."""

    status_code = 400
    #: True when the refusal wrote an audit event that must be committed, not rolled back.
    keeps_evidence = False

    def __init__(
        self, message: str, field: str | None = None, *, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        #: Each field at fault with what is wrong with it, for forms and problem+json `errors[]`.
        self.errors = errors or ({field: message} if field else {})


class NotAuthenticated(Refused):
    """The credentials presented (an API token) do not say who is asking."""

    status_code = 401


class NotAllowed(Refused):
    status_code = 403


class NotFound(Refused):
    status_code = 404


class StateConflict(Refused):
    """The thing is not in a state this step accepts, usually because someone acted first.

    About a clip, it also says what the clip is now, who changed it last and when.
    """

    status_code = 409

    def __init__(self, message: str, clip: Clip | None = None, field: str | None = None) -> None:
        super().__init__(message, field)
        self.clip_id = clip.id if clip is not None else None
        self.status: ClipStatus | None = clip.status if clip is not None else None
        self.changed_at: datetime | None = clip.status_changed_at if clip is not None else None
        self.changed_by: int | None = clip.status_changed_by_id if clip is not None else None


class Gone(Refused):
    """It existed but no longer serves: a revoked or expired link, a changed file."""

    status_code = 410


class TooLarge(Refused):
    status_code = 413


class InvalidInput(Refused):
    """Something the person sent cannot be used; `field` says which part when one does."""

    status_code = 422
