"""Welcome offers: what central publishes, which one a member gets, and claiming it."""
