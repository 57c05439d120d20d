"""Helpers of tests/e2e/test_containerd.py: the CRI API subset (cri_api.proto) and its client, the pause image, and
containerd confined to a throwaway node."""
