import pytest

from mtr.errors import InputError
from mtr.io import read_json, write_json, write_results_section


def test_results_section_is_replaced_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n\n## Reading\nkept\n")
    write_results_section(readme, "| a |\n|---|")
    assert (
        readme.read_text()
        == "# Title\n\n<!-- results:start -->\n| a |\n|---|\n<!-- results:end -->\n\n## Reading\nkept\n"
    )
    readme.write_text("no markers")
    with pytest.raises(InputError, match="markers"):
        write_results_section(readme, "x")


def test_read_json_names_missing_and_malformed_files(tmp_path):
    write_json(tmp_path / "ok.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2], "b": 1}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json is not valid JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(InputError, match="missing.json not found"):
        read_json(tmp_path / "missing.json")


def test_write_json_writes_an_unknown_number_as_null_so_strict_readers_parse_it(tmp_path):
    import json

    write_json(tmp_path / "truth.json", {"truth": {"conversion": 0.03, "purchase_value": float("nan")}, "n": [1.5]})
    text = (tmp_path / "truth.json").read_text()
    assert "NaN" not in text
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert strict == {"n": [1.5], "truth": {"conversion": 0.03, "purchase_value": None}}
