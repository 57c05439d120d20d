"""pycni host-local plugin."""
