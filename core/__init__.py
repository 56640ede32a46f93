"""Core of the Microsoft 365 calendar integration: domain, services, ports and adapters."""
