"""A local emulator of DashScope's OpenAI-compatible Chat Completions API."""

from .server import Emulator, Fault, RequestRecord

__all__ = ["Emulator", "Fault", "RequestRecord"]
