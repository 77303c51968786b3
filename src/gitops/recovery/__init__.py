"""Recovery after an account wipe: what the release cannot recreate, backed up, restored and drilled."""
