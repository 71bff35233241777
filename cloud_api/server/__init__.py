"""The reference central member API server: aiohttp handlers over SQLite or PostgreSQL."""
