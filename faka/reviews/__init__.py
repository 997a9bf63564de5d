"""Reviews and reputation."""
