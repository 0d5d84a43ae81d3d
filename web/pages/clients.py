"""The clients screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("clients_page", __name__)
