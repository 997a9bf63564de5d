"""The ledger: balances, payouts, withdrawals and settlement."""
