"""One run: plan, answer (runner, response cache), score answer files, evaluate end to end."""
