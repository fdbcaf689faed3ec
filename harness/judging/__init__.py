"""LLM judges: the contract tasks call, the OpenAI-compatible judge and its cache."""
