"""The embedded, clean-room StyleGAN2-ADA host (runs on CPU and CUDA, no checkout needed)."""
from plugin.hosts.base import Host


class EmbeddedHost(Host):
    name = 'embedded'
    family_modules = {'stylegan2.networks': 'plugin.hosts.embedded.networks'}
    class_path_families = {'training.networks.': 'stylegan2.networks'}
