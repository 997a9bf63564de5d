"""The catalogue: categories, products, images, checkout fields, moderation and the storefront."""
