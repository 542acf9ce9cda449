"""chatsessions: the session index for multi-channel chat assistants."""

__version__ = "0.1.0"
