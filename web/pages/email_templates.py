"""The email templates screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("email_templates_page", __name__)
