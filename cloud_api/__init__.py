"""The central member API: its contract (openapi.yaml), typed client and reference server."""
