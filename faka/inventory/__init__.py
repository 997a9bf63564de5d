"""Stock: card keys, their import and reservation."""
