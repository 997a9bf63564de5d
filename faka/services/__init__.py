"""Domain logic. Plain functions that take ids and values and own their transactions;
no Flask request or session objects in here."""
