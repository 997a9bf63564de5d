"""Orders: checkout, coupons, delivery, lookup and the status signal."""
