"""The admin dashboard: catalog and sales figures computed by aggregation pipelines."""
