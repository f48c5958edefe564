"""Form pieces shared by several blueprints."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, widgets
from wtforms.fields.choices import SelectChoice

from .models import Role


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as checkboxes, each with its own visible label."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, role.value.capitalize()) for role in Role]


class ActionForm(FlaskForm):
    """A button that changes something: CSRF and nothing else."""
