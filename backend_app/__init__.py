"""storefront: a multi-tenant e-commerce API (FastAPI on MongoDB)."""

__version__ = "0.1.0"
