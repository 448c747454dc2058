"""Data: readers for each dataset layout, integrity checks, the prepared slice store, splits and transforms."""
