"""Merging the rooted models: the one registry of merge methods lives in plugin.merging
(shared with ``python -m plugin merge``); the cocktail's averaging stage uses it with the
root as the base and the rooted models as the others."""
from plugin.merging import COPIED_BUFFERS, MERGE_METHODS, merge_modules, merge_state_dicts  # noqa: F401
