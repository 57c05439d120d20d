"""pycni's shared code: the CNI protocol (spec 1.1.0) and the edges to the host."""
