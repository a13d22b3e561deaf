"""FastAPI access to the settings the app was built with (``app.state.settings``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from config import Settings


async def get_app_settings(request: Request) -> Settings:
    """FastAPI dependency: the ``Settings`` passed to ``create_app()`` (``async``: no thread-pool hop per request)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_app_settings)]
