"""The inbox screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("inbox_page", __name__)
