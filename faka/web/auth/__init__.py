"""Sign-in, sign-up and passkeys."""
