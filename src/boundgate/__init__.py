"""boundgate: an OpenAI-compatible gateway that meters energy and carbon per request."""

__version__ = "0.1.0"

__all__ = ["__version__"]
