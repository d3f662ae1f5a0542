"""Optional integrations that need extra packages (install the matching extra)."""
