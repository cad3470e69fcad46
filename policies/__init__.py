"""policies stage of tapsift."""
