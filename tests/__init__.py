"""The test suite: one module per area, shared helpers in _support.py."""

from __future__ import annotations
