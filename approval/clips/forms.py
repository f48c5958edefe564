"""The upload form, for the browser-direct path (metadata only) and the plain form path."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


class ClipDetailsForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(min=1, max=200)])
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
    notes = TextAreaField("Notes for the reviewer", validators=[Optional(), Length(max=4000)])


class UploadForm(ClipDetailsForm):
    """Without JavaScript the file comes with the form and the app streams it to storage."""

    file = FileField("Video file", description="MP4, MOV, WebM or MKV.")


class DirectUploadForm(ClipDetailsForm):
    """With JavaScript the page sends only what it knows of the file, then the bytes go direct."""

    filename = StringField("File name", validators=[InputRequired(), Length(max=1000)])
    size = IntegerField("File size", validators=[InputRequired(), NumberRange(min=0)])
