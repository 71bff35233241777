"""Connection limits for the project's aiohttp servers: the gateway's API and central's.

Infrastructure both sides share without sharing anything of the gateway's domain.
"""

from httplimits.guard import ConnectionGuard, GuardedSockSite, HttpLimits, serve_app

__all__ = ["ConnectionGuard", "GuardedSockSite", "HttpLimits", "serve_app"]
