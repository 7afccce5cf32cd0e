"""Forum fixtures live in tests/conftest.py (app, client, member_factory), shared by every service."""
