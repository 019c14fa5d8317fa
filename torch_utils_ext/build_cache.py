"""Where JIT-built extensions live (the fused kernels and their CPU-emulated builds)."""
import os


def cache_root():
    return os.environ.get('COCKTAIL_EXT_CACHE', os.path.join(os.path.expanduser('~'), '.cache', 'gan-cocktail'))
