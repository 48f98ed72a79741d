"""Helpers shared by the tests: small real images written as `docker save` archives."""
