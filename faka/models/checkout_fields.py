"""What a product asks the buyer at checkout (a game UID, a server, an account), and the answers."""
