"""Data roots: JSON readers, checks of a root, preparation from hub copies, the demo root."""
