"""The inventory invariant, checked against the database the way an auditor would recount the shelf."""

from __future__ import annotations

from typing import Any


async def inventory_violations(db: Any) -> list[str]:
    """Every way the stored stock disagrees with the orders; ``[]`` when the invariant holds.

    For every product and size: ``allocated`` equals the units of that size in
    pending orders, ``0 ≤ allocated ≤ quantity`` and ``available = quantity −
    allocated``. For every owner: the holds document counts their pending orders
    and the units those hold.
    """
    pending_units: dict[tuple[Any, str], int] = {}
    per_owner: dict[str, tuple[int, int]] = {}
    async for order in db["orders"].find({"status": "pending"}):
        orders, units = per_owner.get(order["userId"], (0, 0))
        per_owner[order["userId"]] = (orders + 1, units + sum(item["qty"] for item in order["items"]))
        for item in order["items"]:
            for taken in item.get("taken", []):
                key = (item["productId"], taken["size"])
                pending_units[key] = pending_units.get(key, 0) + taken["qty"]
    problems: list[str] = []
    async for product in db["products"].find({}):
        for size in product.get("sizes", []):
            key = (product["_id"], size["size"])
            held = pending_units.pop(key, 0)
            quantity, allocated, available = size["quantity"], size.get("allocated"), size.get("available")
            if allocated != held:
                problems.append(f"{key}: allocated {allocated}, pending orders hold {held}")
            if allocated is None or not 0 <= allocated <= quantity:
                problems.append(f"{key}: allocated {allocated} outside 0..{quantity}")
            if allocated is not None and available != quantity - allocated:
                problems.append(f"{key}: available {available} != {quantity} - {allocated}")
    problems.extend(
        f"{key}: pending orders hold {n} units of a size that does not exist" for key, n in pending_units.items() if n
    )
    async for holds in db["order_holds"].find({}):
        expected = per_owner.pop(holds["_id"], (0, 0))
        if (holds.get("orders", 0), holds.get("units", 0)) != expected:
            problems.append(f"holds of {holds['_id']}: {holds.get('orders')}/{holds.get('units')}, pending {expected}")
    problems.extend(f"holds of {owner}: none, pending {counts}" for owner, counts in per_owner.items())
    return problems
