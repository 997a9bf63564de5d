"""Growth: reseller sub-stores and affiliate links."""
