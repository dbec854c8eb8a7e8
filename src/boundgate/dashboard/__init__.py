"""The operator dashboard served at /dashboard (see :mod:`.routes`)."""

from .routes import install
from .session import Sessions, load_or_create_secret

__all__ = ["Sessions", "install", "load_or_create_secret"]
