"""Product images: a cover and a gallery per product, stored re-encoded under content-hashed names."""
