"""Small shared utilities (distributed helpers, atomic files, environment capture)."""
