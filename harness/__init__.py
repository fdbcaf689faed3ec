"""TinyLLaVA evaluation harness: exact, fast, resumable benchmark runs."""

__version__ = "0.1.0"
