"""WTForms (Flask-WTF) forms of the console; each carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired

from app.pnp import workflow as wf


class LoginForm(FlaskForm):
    """Operator login: ADMIN_USER / ADMIN_PASSWORD."""

    user = StringField("User", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class ActionForm(FlaskForm):
    """A button that changes a device (retry, reset, delete, claim): only the CSRF token."""


class ResumeForm(FlaskForm):
    """Resume a device at a chosen workflow state."""

    state = SelectField("State", choices=[s.value for s in wf.State],
                        validators=[DataRequired()])


class ImportForm(FlaskForm):
    """Inventory CSV upload."""

    csv_file = FileField("CSV file", validators=[FileRequired()])
