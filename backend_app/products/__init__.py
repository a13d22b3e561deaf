"""The catalog: products, their sizes and stock (docs/contract.md §1, §4)."""
