"""pycni bridge plugin."""
