"""Risk: the rules engine, blacklist, security events, captcha and the monitor."""
