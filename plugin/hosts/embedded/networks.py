"""The embedded host's ``training.networks``: every class under the host's own name.

Host class paths such as ``training.networks.Generator`` resolve here when the embedded
host is active (see ``plugin.hosts.embedded.EmbeddedHost``).
"""
from .discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from .generator import Generator, SynthesisBlock, SynthesisNetwork
from .layers import (Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer, SynthesisLayer,
                     ToRGBLayer, modulated_conv2d, normalize_2nd_moment)

__all__ = ['Conv2dLayer', 'Discriminator', 'DiscriminatorBlock', 'DiscriminatorEpilogue', 'FullyConnectedLayer',
           'Generator', 'MappingNetwork', 'MinibatchStdLayer', 'SynthesisBlock', 'SynthesisLayer',
           'SynthesisNetwork', 'ToRGBLayer', 'modulated_conv2d', 'normalize_2nd_moment']
