"""fingerprints stage of tapsift."""
