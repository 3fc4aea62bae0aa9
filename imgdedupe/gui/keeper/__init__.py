"""Edit ▸ Keeper rules…: the chain that chooses each group's suggested
keeper (core.groups.keeper_rules), edited in a dialog, kept in the settings
and applied to the groups on show without a rescan.
"""
