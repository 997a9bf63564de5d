"""Accounts: users, merchants, sign-up, sessions, two-factor, passkeys and the merchant review."""
