"""A langgraph-swarm travel team guarded by guardrails-plugin: see ``app.py``."""
