"""The editor side without torch (issue 13): with the ``[local]`` extra's packages (torch,
transformers, accelerate, and the model server's pydantic and prometheus_client) made
impossible to import, the real language server still completes through a model server, and
``backend = local`` says what to install instead of failing obscurely."""

from __future__ import annotations

import os
from pathlib import Path

from tests.lsp_helpers import lsp_session, scripted_model_server

BLOCKER = '''
import sys

class _NoLocalEngine:
    """Behave as if the local engine's packages were not installed."""

    def find_spec(self, name, path=None, target=None):
        local_extra = (
            "torch", "transformers", "accelerate", "safetensors", "pydantic", "prometheus_client"
        )
        if name.split(".")[0] in local_extra:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoLocalEngine())
'''


def without_torch(folder: Path) -> dict[str, str]:
    """An environment whose Python cannot import torch/transformers/accelerate."""
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    }


async def test_http_backend_completes_without_torch(tmp_path: Path) -> None:
    target = "def area(radius):\n    return 3.14159 * radius ** 2\n"
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with scripted_model_server(target, tmp_path) as settings:
        async with lsp_session(settings, env=without_torch(blocked)) as s:
            uri = "file:///area.py"
            s.open(uri, "def area(radius):\n    return ")
            items = await s.inline(uri, 1, 11)
            assert [i.insert_text for i in items] == ["3.14159 * radius ** 2"]


async def test_local_backend_without_torch_says_what_to_install(tmp_path: Path) -> None:
    async with lsp_session(
        {"model": "demo", "backend": "local"}, env=without_torch(tmp_path), wait_ready=False
    ) as s:
        status = await s.wait_state("error", timeout=60)
        assert "pip install 'codellama-lsp[local]'" in status["message"]
        assert "torch" in status["message"]
