"""Fixtures shared by every test module (plain helpers live in ``tests.helpers``)."""
import pytest

from tests.helpers import FIXTURES, SG3_FIXTURE_CONFIGS, SG3_FIXTURES


@pytest.fixture(scope='session')
def fixtures_dir():
    if not (FIXTURES / 'uncond32' / 'network-snapshot.pkl').is_file():
        # A plain clone has no ../shared: these tests need pickles written by the real host.
        pytest.skip(f'host fixtures not found at {FIXTURES} (a clone without ../shared; set COCKTAIL_FIXTURES)')
    return FIXTURES


@pytest.fixture(scope='session')
def sg3_fixtures_dir():
    if not all((SG3_FIXTURES / cfg / 'network-snapshot.pkl').is_file() for cfg in SG3_FIXTURE_CONFIGS):
        # A plain clone has no ../shared: these tests need pickles written by the stylegan3 repo.
        pytest.skip(f'stylegan3 fixtures not found at {SG3_FIXTURES} (a clone without ../shared; set '
                    'COCKTAIL_SG3_FIXTURES)')
    return SG3_FIXTURES


@pytest.fixture(scope='module')
def one_thread():
    """Tiny networks run fastest on one thread: with other jobs on two cores, the default
    threads oversubscribe them (a bypass test measured 67 s instead of 4 s). Modules that
    train tiny networks use it: ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
