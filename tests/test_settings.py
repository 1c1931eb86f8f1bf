"""Settings are data: every one is documented, parsed and overridable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.platform import settings

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("setting", settings.SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme(setting):
    assert f"| `{setting.env}` |" in README, f"document {setting.env} in the README's table"
    assert setting.help


def test_environment_overrides_defaults():
    values = settings.load({"DOM_PORT": "9001", "DOM_STORE_PERSONAL_DATA": "false"})
    assert values["PORT"] == 9001
    assert values["STORE_PERSONAL_DATA"] is False
    assert values["DATABASE"] == "dom.db"


def test_explicit_config_wins_over_environment():
    assert settings.load({"DOM_PORT": "9001"}, {"PORT": 7})["PORT"] == 7


@pytest.mark.parametrize(
    ("variable", "value"), [("DOM_PORT", "eighty"), ("DOM_AUTO_MIGRATE", "perhaps")]
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(settings.SettingError, match=variable):
        settings.load({variable: value})
