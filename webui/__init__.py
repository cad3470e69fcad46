"""webui stage of tapsift."""
