"""docs/operations.md's table of what fits on 8-24 GB cards says what the code computes:
the STT need is the engine's estimate, the Ollama overhead is what the ollama_server role
sets (the stt_server filter), and what is left for Ollama is the card less that overhead."""

from __future__ import annotations

import re
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = spec_from_file_location(name, path)
    module = module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


estimate = _load("aistack_stt_estimate_for_docs", ROOT / "stt/src/aistack_stt/vram/estimate.py")
filters = _load("stt_server_filters_for_docs", ROOT / "plugins/filter/stt_server.py")


def _rows() -> list[list[str]]:
    text = (ROOT / "docs/operations.md").read_text()
    table = text[text.index("<!-- gpu sharing table -->") : text.index("<!-- end of gpu sharing")]
    lines = [line for line in table.splitlines() if line.startswith("| ") and "GB |" in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_card_table_covers_8_12_16_and_24_gb():
    assert {row[0] for row in _rows()} == {"8 GB", "12 GB", "16 GB", "24 GB"}


def test_each_row_is_the_estimate_the_role_overhead_and_the_rest_of_the_card():
    for card, stt, need, overhead, left, _models, max_loaded in _rows():
        model, compute_type = re.findall(r"`([^`]+)`", stt)
        assert int(need) == estimate.estimate(model, None, compute_type).total_mib, card
        assert int(overhead) == filters.stt_server_vram_need_mib(model, compute_type), card
        card_mib = int(card.split()[0]) * 1024
        assert left == f"{(card_mib - int(overhead)) / 1024:.1f} GiB", card
        assert max_loaded == "1"


def test_the_default_compute_type_of_each_card_is_the_roles():
    sizes = {"8 GB": "8192", "12 GB": "12288", "16 GB": "16384", "24 GB": "24576"}
    for card, stt, *_ in _rows():
        _model, compute_type = re.findall(r"`([^`]+)`", stt)
        chosen = filters.card_compute_type({"compute_cap": "8.6", "memory_mib": sizes[card]})
        assert compute_type == chosen, card
