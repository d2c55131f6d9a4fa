"""Built-in fusion plugin."""
