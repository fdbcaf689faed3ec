"""An OpenAI-compatible chat-completions server over any model adapter."""
