"""Webhooks: endpoints that subscribe to events, and signed deliveries that retry (Standard Webhooks)."""
