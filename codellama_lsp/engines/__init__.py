"""Engines turn prompt ids into text: in-process transformers, or an HTTP model server."""
