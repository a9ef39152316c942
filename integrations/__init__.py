"""Real applications on third-party frameworks, each guarded as a user would guard it.

A package so that each app runs as ``python -m integrations.<name>.app`` and its test imports
it as ``integrations.<name>``: never as a top-level name that could shadow the framework
(``integrations/langgraph_supervisor`` next to the ``langgraph_supervisor`` package).
"""
