"""Importers: results of other harnesses turned into our run directories and store entries."""
