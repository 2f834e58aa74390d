"""The import checker `make lint` runs: it finds a cycle and an upward import in a planted tree,
and the repository itself has neither."""

from pathlib import Path

from tests.conftest import REPO
from tools import import_layers


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_cycle_and_an_upward_import_are_each_named_with_file_and_line(tmp_path: Path, capsys) -> None:
    root = _tree(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/core/__init__.py": "",
            "pipeline/core/config.py": "def f():\n    from pipeline.models import base  # lazy, still counted\n",
            "pipeline/models/__init__.py": "",
            "pipeline/models/base.py": "from pipeline.core import config\n",
            "pipeline/models/a.py": "from pipeline.models import b\n",
            "pipeline/models/b.py": "import pipeline.models.a\n",
            "ops/__init__.py": "",
            "ops/x.py": "from tests import helpers\n",
            "tests/__init__.py": "",
            "tests/helpers.py": "import ops.x\n",
        },
    )
    assert import_layers.main([str(root)]) == 1
    out = capsys.readouterr().out
    assert "import cycle: pipeline.models.a <-> pipeline.models.b" in out
    assert "import cycle: pipeline.core.config <-> pipeline.models.base" in out
    assert f"{root / 'pipeline/core/config.py'}:2: pipeline.core.config imports pipeline.models.base" in out
    assert "core is below models, so it may not import it" in out
    assert "ops may not import tests" in out


def test_a_module_outside_every_layer_is_refused(tmp_path: Path, capsys) -> None:
    root = _tree(
        tmp_path,
        {"pipeline/__init__.py": "", "pipeline/core/__init__.py": "", "pipeline/misc.py": "x = 1\n"},
    )
    assert import_layers.main([str(root)]) == 1
    assert "pipeline.misc is in no layer" in capsys.readouterr().out


def test_the_repository_has_no_import_cycle_and_no_upward_import(capsys) -> None:
    assert import_layers.main([str(REPO)]) == 0, capsys.readouterr().out
