"""inspectors stage of tapsift."""
