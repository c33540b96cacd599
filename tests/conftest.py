import os

# moshi compiles some functions with torch.compile on first use (seconds per shape on CPU);
# eager mode keeps the suite fast and both sides of every comparison run the same code.
os.environ.setdefault("NO_TORCH_COMPILE", "1")

import huggingface_hub  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dsmlab import load, save_random  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A random-weight tiny checkpoint with VAD heads, in the HF layout."""
    return save_random("tiny", tmp_path_factory.mktemp("tiny-vad"), seed=0, vad_heads=True)


@pytest.fixture(scope="session")
def tiny_novad_dir(tmp_path_factory):
    return save_random("tiny", tmp_path_factory.mktemp("tiny"), seed=1)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    return load(tiny_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_novad(tiny_novad_dir):
    return load(tiny_novad_dir, device="cpu")


def make_audio(seconds: float, seed: int) -> torch.Tensor:
    """Noise under a random per-frame envelope at 24 kHz: it drives varied Mimi codes."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 24000)
    envelope = torch.rand(n // 1920 + 1, generator=g).repeat_interleave(1920)[:n]
    return 0.3 * envelope * torch.randn(n, generator=g)


@pytest.fixture
def hub_offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 with an empty HF cache in tmp_path/hub. huggingface_hub picks its offline
    adapter when a session is made, so sessions made earlier (by datasets) are dropped."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    huggingface_hub.utils.reset_sessions()
    yield tmp_path / "hub"
    huggingface_hub.utils.reset_sessions()


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run where a GPU is, and say why they skip elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
