"""Pure values and rules. Imports nothing from azure, msal or requests (tests/unit/test_layers.py)."""
