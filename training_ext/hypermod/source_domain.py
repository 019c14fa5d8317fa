"""Which class of the labelled target looks like the source's own domain.

Without ``--hyper-anchor`` the class that is the source's domain drifts away from the source
during conditional training (BENCHMARKS.md, issue 17: 0.87 -> 0.55 at 8 kimg on the shipped
discs run), so the pipeline measures, before it trains, how the source's discriminator scores
each class's real images, and says which class to anchor (or warns when the anchor given is
not the best-scored class). The source D was trained to score its own training data as real:
the class it scores highest is the one most like the source's domain. Measured on the shipped
sources and five rendered domains (BENCHMARKS.md): the source's own domain scored highest for
each of the four sources. A distance between feature means in D's penultimate space was tried
first and named the wrong class for three of the four (D's features mostly tell real from
generated, so the source's samples are far from every class's reals).
"""
import copy

import numpy as np
import torch


def class_image_indices(dataset, num):
    """{class: up to ``num`` dataset indices}, in dataset order (labels are one-hot)."""
    by_class = {k: [] for k in range(dataset.label_dim)}
    for i in range(len(dataset)):
        k = int(np.argmax(dataset.get_label(i)))
        if len(by_class[k]) < num:
            by_class[k].append(i)
    return by_class


@torch.no_grad()
def class_scores(D, dataset, num=64, batch=16):
    """[the unconditional source D's mean logit over up to ``num`` real images of class k] (None
    for a class without images). 64 images per class (the measurement above) keep this to
    seconds on a CPU for small sources; on a CUDA machine D runs there for large ones."""
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    D = copy.deepcopy(D).eval().requires_grad_(False).to(device)
    out = []
    for k, indices in class_image_indices(dataset, num).items():
        if not indices:
            out.append(None)
            continue
        logits = []
        for i in range(0, len(indices), batch):
            reals = np.stack([dataset[j][0] for j in indices[i:i + batch]])
            img = torch.from_numpy(reals).to(device).float() / 127.5 - 1
            logits.append(D(img, img.new_zeros([img.shape[0], 0])).flatten().double())
        out.append(float(torch.cat(logits).mean()))
    return out


def anchor_advice(scores, anchor):
    """One log line: the scores, and which class to anchor (``anchor`` None) or a warning
    (``anchor`` is not the best-scored class)."""
    known = [(s, k) for k, s in enumerate(scores) if s is not None]
    text = ("the source D's mean score on each class's real images (higher: more like the source's own "
            'data): ' + ', '.join(f'class {k} ' + ('no images' if s is None else f'{s:.3g}')
                                  for k, s in enumerate(scores)))
    if not known:
        return text
    best, nearest = max(known)
    if anchor is None:
        return (text + f'. Class {nearest} scores highest: if it is the source\'s own domain, --hyper-anchor '
                f'{nearest} keeps it exactly the source (without an anchor it drifts)')
    if anchor != nearest:
        given = 'no images' if anchor >= len(scores) or scores[anchor] is None else f'{scores[anchor]:.3g}'
        return (text + f'. Warning: --hyper-anchor {anchor} ({given}), but class {nearest} scores higher '
                f'({best:.3g})')
    return text + f'. --hyper-anchor {anchor} is the class scored highest'
