"""Configuration of storefront: the ``Settings`` class and its loader."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
