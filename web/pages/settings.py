"""The settings screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings_page", __name__)
