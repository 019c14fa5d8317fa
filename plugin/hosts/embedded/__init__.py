"""The embedded, clean-room host (runs on CPU and CUDA, no checkout needed): StyleGAN2-ADA's
networks, and the stylegan3 repo's StyleGAN2 (``networks_stylegan2``) and alias-free StyleGAN3-T/-R
generator (``networks_stylegan3``)."""
from plugin.hosts.base import Host

_PKG = 'plugin.hosts.embedded'


class EmbeddedHost(Host):
    name = 'embedded'
    family_modules = {'stylegan2.networks': f'{_PKG}.networks',
                      'stylegan3.networks_stylegan2': f'{_PKG}.networks_stylegan2',
                      'stylegan3.networks': f'{_PKG}.networks_stylegan3'}
    packages = (_PKG,)
    class_path_modules = {
        'training.networks.': f'{_PKG}.networks',
        'training.networks_stylegan2.': f'{_PKG}.networks_stylegan2',
        'training.networks_stylegan3.': f'{_PKG}.networks_stylegan3',
        'training.loss.': f'{_PKG}.loss',
        'training.augment.': f'{_PKG}.augment',
        'training.dataset.': f'{_PKG}.dataset',
    }

    def training_loop(self, **kwargs):
        from .training_loop import training_loop
        return training_loop(self, **kwargs)

    def report(self, name, value):
        from .training_stats import report
        return report(name, value)
