"""Text from other places for the prompt: open documents, recent edits, the workspace index."""
