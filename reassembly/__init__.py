"""reassembly stage of tapsift."""
