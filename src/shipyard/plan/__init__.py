"""Planning: diffs, staleness and dependency waves. Pure: given deployed state, it reads nothing."""
