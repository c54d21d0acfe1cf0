"""The LSP side: handlers, protocol and framing, documents, items, progress, editor reports."""
