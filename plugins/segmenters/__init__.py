"""Built-in segmenters plugin."""
