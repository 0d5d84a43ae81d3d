"""The customers screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("customers_page", __name__)
