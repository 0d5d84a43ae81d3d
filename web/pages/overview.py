"""The overview screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("overview_page", __name__)
