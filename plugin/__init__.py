"""GAN Cocktail plugin for StyleGAN2-ADA-style codebases.

Public API:
    load_network_pkl(path)        safe reader of host snapshot pickles
    save_network_pkl(data, path)  atomic writer in the host layout
    get_host / active_host        the host the plugin talks to (embedded by default)
    patch(host_path, features)    enable the plugin's fixes in a legacy pipeline, with undo
"""
from .easydict import EasyDict
from .hosts import active_host, get_host, set_active_host
from .patch import PatchError, patch
from .pickles import NetworkPickleError, UnsafePickleError, load_network_pkl, save_network_pkl

__version__ = '0.1.0'

__all__ = ['EasyDict', 'NetworkPickleError', 'PatchError', 'UnsafePickleError', 'active_host', 'get_host',
           'load_network_pkl', 'patch', 'save_network_pkl', 'set_active_host']
