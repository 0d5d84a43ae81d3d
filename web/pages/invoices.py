"""The invoices screen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("invoices_page", __name__)
