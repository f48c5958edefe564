"""Forms for the review queue and the review page."""

from __future__ import annotations

import math
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, FloatField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from approval.config import rejection_categories
from approval.forms import MultiCheckboxField
from approval.models import Comment
from approval.ops.notifications import timecode
from approval.ops.queue import AGES, PROVENANCE_STATES, Filters


class QueueFilterForm(FlaskForm):
    """The queue's filters: a GET form, so it is bookmarkable and needs no CSRF token."""

    class Meta:
        csrf = False

    tester = SelectField("Tester", coerce=str, validators=[Optional()])
    generator = StringField("Generator", validators=[Optional(), Length(max=200)])
    age = SelectField(
        "Waiting",
        choices=[
            SelectChoice("", "Any time"),
            *(SelectChoice(key, label) for key, (label, _) in AGES.items()),
        ],
        validators=[Optional()],
    )
    provenance = SelectField(
        "Content Credentials",
        choices=[
            SelectChoice("", "Any"),
            *(SelectChoice(key, label) for key, label in PROVENANCE_STATES.items()),
        ],
        validators=[Optional()],
    )

    def __init__(self, *args: Any, testers: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tester.choices = [
            SelectChoice("", "Any tester"),
            *(SelectChoice(str(user_id), name) for user_id, name in testers),
        ]

    def filters(self) -> Filters:
        """The filters as the queue reads them; call after validate()."""
        tester = self.tester.data or ""
        return Filters(
            tester_id=int(tester) if tester.isdigit() else None,
            generator=(self.generator.data or "").strip(),
            age=self.age.data or "",
            provenance=self.provenance.data or "",
        )


class CitedComments(MultiCheckboxField):
    """The clip's comments a rejection points at; any other id is refused in words."""

    def pre_validate(self, form: Any) -> None:
        offered = {choice.value for choice in self.choices}  # type: ignore[union-attr]
        if any(value not in offered for value in self.data or []):
            raise ValidationError("A rejection can point only at comments on this clip.")


class RejectForm(FlaskForm):
    """A rejection needs a category and a reason the tester will read; a timecode is optional."""

    category = SelectField(
        "Category", validators=[DataRequired("Pick the category that fits best.")]
    )
    reason = TextAreaField(
        "What is wrong",
        validators=[
            DataRequired("Say what is wrong; the tester will read this."),
            Length(max=4000),
        ],
        description="Shown to the tester. Be specific, so the next version can fix it.",
    )
    timecode = FloatField(
        "Timecode (seconds)",
        validators=[Optional()],
        description="Optional: where in the clip the problem is, in seconds.",
    )
    comment_ids = CitedComments("Point at comments (optional)", coerce=int, validators=[Optional()])

    def __init__(
        self,
        *args: Any,
        duration: float | None = None,
        comments: list[Comment] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.duration = duration
        self.category.choices = [
            SelectChoice("", "Choose a category…"),
            *(SelectChoice(key, label) for key, label in rejection_categories().items()),
        ]
        # The clip's threads: a rejection can say "see the comments at 0:03 and 0:07".
        self.comment_ids.choices = [
            SelectChoice(comment.id, _citation(comment)) for comment in comments or []
        ]

    def validate_timecode(self, field: Field) -> None:
        if field.data is None:
            return
        if not math.isfinite(field.data) or field.data < 0:
            raise ValidationError("Give a number of seconds from 0.")
        if self.duration is not None and field.data > self.duration:
            raise ValidationError(f"The clip is only {self.duration:g} seconds long.")


def _citation(comment: Comment) -> str:
    """How the reject form lists a comment: its moment and the start of its words."""
    words = comment.body if len(comment.body) <= 80 else comment.body[:79] + "…"
    if comment.at_seconds is None:
        return f"Whole clip: {words}"
    return f"{timecode(comment.at_seconds)}: {words}"
