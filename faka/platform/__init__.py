"""Platform-wide settings, audit, analytics, retention, backup and database copy."""
