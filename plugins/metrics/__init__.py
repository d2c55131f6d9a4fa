"""Built-in metrics plugin."""
