"""Form pieces shared by several blueprints."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, Form, IntegerField, SelectMultipleField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, ValidationError

from .inputs import MAX_ID
from .models import Role

#: The last day a day filter may name: a query for "up to the end of the day" needs the next.
LAST_DAY = date.max - timedelta(days=1)


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as checkboxes, each with its own visible label."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, role.value.capitalize()) for role in Role]


class IdField(IntegerField):
    """A record's number, refused (as a field error) unless an id column could hold it."""

    def __init__(self, *args: Any, validators: list[Any] | None = None, **kwargs: Any) -> None:
        within = NumberRange(min=1, max=MAX_ID, message=f"Give a number from 1 to {MAX_ID:,}.")
        super().__init__(*args, validators=[*(validators or []), within], **kwargs)


class DayField(DateField):
    """A day in a filter, up to LAST_DAY, so the day after it still exists to bound a query."""

    def pre_validate(self, form: Form) -> None:
        if self.data is not None and self.data > LAST_DAY:
            raise ValidationError(f"Give a date up to {LAST_DAY.isoformat()}.")


class ActionForm(FlaskForm):
    """A button that changes something: CSRF and nothing else."""
