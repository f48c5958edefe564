"""The upload form, for the browser-direct path (metadata only) and the plain form path."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import Field, IntegerField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from approval.models import Clip
from approval.ops.uploads import CONTENT_TYPES

#: The longest title; the form states it, the browser stops there, the server says so too.
TITLE_MAX_CHARS = 200
#: What the file picker offers: any video, and our containers by name for systems that do not
#: know their types (a .mkv is often typeless).
ACCEPTED_FILES = ",".join(["video/*", *CONTENT_TYPES])


class TitleLength(Length):
    """Length with a message that gives the limit and how long the title actually is."""

    def __call__(self, form: Any, field: Field) -> None:
        length = len(field.data or "")
        if length > self.max:
            raise ValidationError(
                f"Titles must be between 1 and {self.max} characters long; this one has "
                f"{length:,} characters."
            )
        super().__call__(form, field)


class ClipDetailsForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[DataRequired(), TitleLength(min=1, max=TITLE_MAX_CHARS)],
        description=f"Up to {TITLE_MAX_CHARS} characters.",
    )
    prompt = TextAreaField(
        "Prompt",
        validators=[Optional(), Length(max=4000)],
        description="The prompt that generated the clip (up to 4,000 characters).",
    )
    generator = StringField(
        "Generator or model", validators=[Optional(), Length(max=200)], description="e.g. vidgen"
    )
    generator_version = StringField(
        "Version", validators=[Optional(), Length(max=100)], description="e.g. 2.1-beta"
    )
    notes = TextAreaField(
        "Notes for the reviewer",
        validators=[Optional(), Length(max=4000)],
        description="Up to 4,000 characters.",
    )

    def fill_from(self, previous: Clip) -> None:
        """Start a new version from the one it replaces: the same details, to be edited."""
        self.title.data = previous.title
        self.prompt.data = previous.prompt
        self.generator.data = previous.generator
        self.generator_version.data = previous.generator_version
        self.notes.data = previous.notes


class UploadForm(ClipDetailsForm):
    """Without JavaScript the file comes with the form and the app streams it to storage."""

    # Several files make several clips, each sent on its own by the page's script; without
    # JavaScript the form takes the first.
    file = MultipleFileField(
        "Video files",
        description="MP4, MOV, WebM or MKV. Choose several to upload them as separate clips.",
        render_kw={"accept": ACCEPTED_FILES},
    )


class DirectUploadForm(ClipDetailsForm):
    """With JavaScript the page sends only what it knows of the file, then the bytes go direct."""

    filename = StringField("File name", validators=[InputRequired(), Length(max=1000)])
    size = IntegerField("File size", validators=[InputRequired(), NumberRange(min=0)])
