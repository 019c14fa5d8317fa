"""Source pickles of a cocktail: loading, compatibility checks, class layout."""
import os
from dataclasses import dataclass

import torch

from training_ext.common.source_pickles import check_distinct_sources, check_same_resolution, load_source, source_labels
from plugin.errors import CocktailError
from plugin.layouts import design_differences


# Tensors whose shapes depend on the number of classes: allowed to differ between sources.
LABEL_TENSORS_G = ('mapping.embed.', 'mapping.fc0.weight')
LABEL_TENSORS_D = ('mapping.', 'b4.out.')


@dataclass
class Source:
    path: str
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    offset: int = 0
    label: str = ''
    index: int = 0

    @property
    def num_classes(self):
        """Classes this source contributes to the merged model (an unconditional one: 1)."""
        return max(self.G.c_dim, 1)

    @property
    def name(self):
        """The source's unique label (see source_labels): stage directories, report, logs."""
        return self.label

    def spec(self):
        """JSON-friendly description for GeneratedImages."""
        return dict(pkl=os.path.abspath(self.path), offset=self.offset, classes=self.num_classes)


def load_sources(paths, names=None):
    """The sources, in order; ``names`` (--class-names) labels them, else source_labels picks."""
    if len(paths) < 2:
        raise CocktailError(f'a cocktail needs at least two source pickles, got {len(paths)}')
    labels = source_labels(paths, names, CocktailError)
    sources, offset = [], 0
    for i, (path, label) in enumerate(zip(paths, labels)):
        data = load_source(path, ('G', 'D', 'G_ema'), CocktailError, ' (rooting needs G, D and G_ema)')
        sources.append(Source(path, data['G'], data['D'], data['G_ema'], offset, label, i))
        offset += sources[-1].num_classes
    check_distinct_sources(paths, [s.G_ema for s in sources], CocktailError)
    check_compatible(sources)
    return sources


def _shapes(module, skip):
    return {n: tuple(t.shape) for n, t in module.state_dict().items() if not n.startswith(skip)}


def check_compatible(sources):
    first = sources[0]
    check_same_resolution({s.path: s.G.img_resolution for s in sources}, CocktailError)
    for s in sources[1:]:
        for what, a, b, skip in (('G', first.G, s.G, LABEL_TENSORS_G), ('D', first.D, s.D, LABEL_TENSORS_D)):
            sa, sb = _shapes(a, skip), _shapes(b, skip)
            diff = sorted(n for n in set(sa) | set(sb) if sa.get(n) != sb.get(n))
            if diff:
                shown = ', '.join(f'{n} {sa.get(n, "missing")} vs {sb.get(n, "missing")}' for n in diff[:8])
                more = f' (+{len(diff) - 8} more)' if len(diff) > 8 else ''
                raise CocktailError(f'{s.path} has another {what} architecture than {first.path}: {shown}{more}')
        design = design_differences(first.G, s.G)      # alias-free: what tensor shapes need not show
        if design:
            more = f' (+{len(design) - 8} more)' if len(design) > 8 else ''
            raise CocktailError(f'{s.path} has another alias-free G design than {first.path}: '
                                f'{", ".join(design[:8])}{more}')


def total_classes(sources):
    return sum(s.num_classes for s in sources)
