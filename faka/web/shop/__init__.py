"""The shop, as a buyer sees it."""
