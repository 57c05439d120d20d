"""The firewall CNI plugin (see plugin.py)."""
