"""pycni portmap plugin."""
