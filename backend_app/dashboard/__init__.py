"""The admin dashboard: catalog and sales figures computed by aggregation pipelines (docs/contract.md §7)."""
