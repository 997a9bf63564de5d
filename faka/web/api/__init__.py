"""JSON and health endpoints."""
