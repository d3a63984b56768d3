"""Floor 5, studies beyond the report: notebooks 06 (beyond) and 07 (alternatives, costs, Table 4)."""
