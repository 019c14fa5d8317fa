"""A real host checkout behind the plugin's seams (``--host PATH``): the host (host.py) and the
in-memory fixes of its legacy code (patch.py, loop_rewrite.py, stand_ins.py)."""
from .host import CheckoutHost, check_layout

__all__ = ['CheckoutHost', 'check_layout']
