"""The only code that talks to Azure SDKs, MSAL and HTTP. Vendor errors become core.domain.errors."""
