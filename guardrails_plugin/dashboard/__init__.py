"""The operator dashboard: a local web page to watch guarded agents and act on them.

Live decisions, agents and their grants, cascade alarms, the approvals graphs wait for
(approve, edit, reject: the waiting graph resumes), pause / resume / kill per thread, agent
or everywhere. ``pip install 'guardrails-plugin[dashboard]'`` (Starlette and uvicorn), then::

    guardrails-plugin dashboard --store guard.db --audit audit.db --graph myapp.graph:graph

or, in Python::

    from guardrails_plugin.dashboard import Dashboard, serve

    serve(Dashboard(SQLiteStore("guard.db"), graph=graph))  # http://127.0.0.1:8765/

The dashboard reads the guard's Store, so it can run as a separate process on the store file
the agents share. It binds 127.0.0.1 unless told otherwise, and then requires a token. The
page loads nothing from the network: it works offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import Dashboard
    from ._operator import Job
    from ._serve import serve, serving

__all__ = ["Dashboard", "Job", "serve", "serving"]

_LAZY = {
    "Dashboard": "._app",
    "Job": "._operator",
    "serve": "._serve",
    "serving": "._serve",
}


def __getattr__(name: str) -> Any:
    # Starlette and uvicorn are an optional extra: import them only when the dashboard is
    # used, so that ``guardrails-plugin``'s other commands work without them.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
