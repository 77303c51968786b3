"""The item kinds of the recovery inventory, one module each (gitops.recovery.inventory.all_kinds)."""
