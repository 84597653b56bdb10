"""Stub: filled in by the platforms' workflow work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
