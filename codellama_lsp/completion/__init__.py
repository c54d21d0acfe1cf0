"""One keystroke's path: typing-through, cache, debounce, prompt, model, clean-up, parse check."""
