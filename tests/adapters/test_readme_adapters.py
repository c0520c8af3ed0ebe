"""The README's section on the adapters stays true: its Python blocks parse, and every lrsearch name they
import or call exists. (They are fragments of a user's code, so tests/test_readme.py does not run them;
the adapters' own tests run the same calls under the real frameworks.)"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _section_blocks(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"^```python\n(.*?)^```$", text[start:end], re.M | re.S)


def _lrsearch_names(block: str) -> list[str]:
    """`module.name` for each lrsearch name the block imports or reaches through an imported module."""
    tree, modules, found = ast.parse(block), {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("lrsearch"):
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name: a.name for a in node.names if a.name.startswith("lrsearch")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


def test_the_adapter_examples_use_what_exists():
    names = [name for block in _section_blocks("## With Lightning or Hugging Face") for name in _lrsearch_names(block)]
    assert names == [
        "lrsearch.adapters.lightning.configure_optimizers",
        "lrsearch.adapters.huggingface.optimizers",
    ]
    for name in names:
        module, attribute = name.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attribute)), name
