"""codellama-lsp: AI code completions from a persistently loaded Code Llama model."""

__version__ = "0.1.0"
