"""The catalog: products, their sizes and stock (spec §1, §4)."""
