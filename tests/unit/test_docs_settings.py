"""The configuration reference stays complete: every setting is in README.md and env.example."""

from __future__ import annotations

from pathlib import Path

from relay.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _variables() -> list[str]:
    return [f"LIENTHONG_{name.upper()}" for name in Settings.model_fields]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    missing = [v for v in _variables() if f"| `{v}` |" not in readme]
    assert missing == [], f"add these to the configuration table in README.md: {missing}"


def test_every_setting_is_in_the_env_example_with_its_default() -> None:
    lines = (ROOT / "deploy" / "env.example").read_text("utf-8").splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    for name, field in Settings.model_fields.items():
        variable = f"LIENTHONG_{name.upper()}"
        assert variable in values, f"add {variable} to deploy/env.example"
        assert values[variable] == str(field.default), (
            f"deploy/env.example: {variable}={values[variable]} but the default is "
            f"{field.default!r}"
        )
