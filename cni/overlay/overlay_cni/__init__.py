"""The overlay CNI plugin: flannel's CNI plugin for pycni-overlayd's subnet.env, delegating to bridge."""
