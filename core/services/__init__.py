"""Use cases written against the ports in core/ports.py. No azure, msal or requests imports."""
