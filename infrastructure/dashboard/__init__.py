"""The web dashboard: server-rendered HTML pages over the read models and the log (docs/dashboard.md).

``dashboard_router(services)`` is included by ``infrastructure.api.app.create_app`` under
``/dashboard``; the static assets (htmx, vendored with its LICENSE) are served at ``/dashboard/static``.
It only reads: stopping it loses nothing, and any number can run at once.
"""

from infrastructure.dashboard.views import STATIC_DIR, dashboard_router

__all__ = ["STATIC_DIR", "dashboard_router"]
