"""The cadences screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cadences_page", __name__)
