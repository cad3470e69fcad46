"""capture stage of tapsift."""
