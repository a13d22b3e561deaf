"""The catalog: products, their sizes and stock."""
