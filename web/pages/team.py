"""The team screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("team_page", __name__)
