"""Run reports (markdown + PNG) and the markdown / JUnit of compare and gate."""
