"""Class-to-source routing of the generated "real" batches: which source generator (and which
of its classes) draws each merged class, and the class mix of the labels-only dataset."""
import numpy as np
import pytest
import torch

from tests.helpers import make_source
from training_ext.common.generated import GeneratedImages, LabelDataset


class Tagged(torch.nn.Module):
    """Stands in for a source's G_ema: every image is filled with 10 * tag + its own class,
    so an image says which source drew it and with which of the source's labels."""

    def __init__(self, tag, c_dim):
        super().__init__()
        self.tag, self.c_dim, self.z_dim, self.img_channels, self.img_resolution = tag, c_dim, 4, 1, 2

    def forward(self, z, c, truncation_psi=1, noise_mode='random'):
        local = c.argmax(1) if self.c_dim else torch.zeros(len(z), dtype=torch.long)
        return (10 * self.tag + local).float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2) / 100


def routed(specs, c_dims, labels):
    gen = GeneratedImages(specs, 'cpu')
    gen.sources = [(Tagged(i, c_dim), offset, count) for i, ((_, offset, count), c_dim)
                   in enumerate(zip(gen.sources, c_dims))]
    return (gen(labels, batch_size=len(labels))[:, 0, 0, 0] * 100).round().long()


@pytest.fixture(scope='module')
def pkls(tmp_path_factory):
    d = tmp_path_factory.mktemp('routing')
    return [make_source(d / 'u0.pkl', seed=0), make_source(d / 'c1.pkl', seed=1, c_dim=2),
            make_source(d / 'u2.pkl', seed=2)]


def test_each_merged_class_is_drawn_by_its_source_and_class(pkls):
    # Merged layout: class 0 <- source 0 (unconditional), classes 1, 2 <- source 1's classes
    # 0, 1 (conditional, offset 1), class 3 <- source 2 (unconditional, offset 3).
    specs = [dict(pkl=pkls[0], offset=0, classes=1), dict(pkl=pkls[1], offset=1, classes=2),
             dict(pkl=pkls[2], offset=3, classes=1)]
    classes = torch.tensor([3, 0, 2, 1, 1, 3, 0, 2])
    tags = routed(specs, [0, 2, 0], torch.eye(4)[classes])
    expected = {0: 0, 1: 10, 2: 11, 3: 20}          # 10 * source + the source's own class
    assert tags.tolist() == [expected[int(k)] for k in classes]


def test_rooting_routes_every_label_to_one_source(pkls):
    # Rooting towards a conditional source over the root's own label layout (offset 0, owns
    # every label): labels inside its classes keep them, others draw a random class of it.
    spec = [dict(pkl=pkls[1], offset=0, classes=1 << 30)]
    tags = routed(spec, [2], torch.eye(3)[torch.tensor([0, 1] * 4 + [2] * 64)])
    assert tags[:8].tolist() == [0, 1] * 4
    assert set(tags[8:].tolist()) == {0, 1}
    # An unconditional batch (no labels) is drawn by the first source.
    assert set(routed(spec, [2], torch.zeros([6, 0])).tolist()) <= {0, 1}


def test_class_percentages_set_the_mix_and_zero_means_never(pkls):
    ds = LabelDataset(resolution=2, num_channels=1, num_classes=4, class_percentages=[0, 1, 0, 3], size=4000)
    labels = np.stack([ds.get_label(i) for i in range(len(ds))])
    share = labels.mean(0)
    assert share[0] == 0 and share[2] == 0
    assert abs(share[1] - 0.25) < 0.03 and abs(share[3] - 0.75) < 0.03
    specs = [dict(pkl=pkls[0], offset=0, classes=1), dict(pkl=pkls[1], offset=1, classes=2),
             dict(pkl=pkls[2], offset=3, classes=1)]
    tags = routed(specs, [0, 2, 0], torch.from_numpy(labels[:200]))
    assert set(tags.tolist()) == {10, 20}            # class 1 -> source 1's class 0, class 3 -> source 2
    uniform = np.stack([LabelDataset(2, 1, 4, size=4000).get_label(i) for i in range(4000)]).mean(0)
    assert np.abs(uniform - 0.25).max() < 0.03
    for bad in ([1, 1, 1], [1, -1, 1, 1], [0, 0, 0, 0]):
        with pytest.raises(ValueError, match='class percentages'):
            LabelDataset(2, 1, 4, class_percentages=bad)


def test_one_generation_per_batch_chunk_and_step(pkls):
    """Dmain and Dreg of one step get the same generated images (generated once); the next
    step's labels (a new tensor) get new ones."""
    from training_ext.common.generated import GeneratedDataLoss
    loss = GeneratedDataLoss.__new__(GeneratedDataLoss)
    loss.generate = GeneratedImages([dict(pkl=pkls[0], offset=0, classes=1)], 'cpu')
    loss._recent = []
    calls = []
    generate = loss.generate.__call__
    loss.generate = lambda c, batch_size=None: calls.append(1) or generate(c, batch_size)
    step1, step2 = torch.eye(1)[[0] * 4], torch.eye(1)[[0] * 4]
    a, b = loss.real_images(step1, 4), loss.real_images(step1, 4)
    assert a is b and len(calls) == 1
    c = loss.real_images(step2, 4)
    assert len(calls) == 2 and not torch.equal(a, c)
    assert not a.is_inference()          # usable by R1 (autograd) in Dreg
