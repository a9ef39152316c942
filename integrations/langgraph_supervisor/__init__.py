"""A langgraph-supervisor team guarded by guardrails-plugin: see ``app.py``."""
