"""docs/CONFIGURATION.md is the generated reference of the settings model, up to date."""

from gateway import config_doc
from tests.conftest import ROOT


def test_configuration_reference_is_up_to_date():
    written = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert written == config_doc.render(), (
        "docs/CONFIGURATION.md is out of date: python -m gateway.config_doc > docs/CONFIGURATION.md")


def test_every_setting_has_a_meaning_or_a_section_text():
    # a row with neither its own comment nor its section's docstring explains nothing
    text = config_doc.render()
    for section in text.split("\n## ")[1:]:
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        prose = [line for line in section.splitlines() if line and not line.startswith(("|", "#"))]
        silent = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
        assert not silent or prose, f"settings without any explanation in [{section.splitlines()[0]}]: {silent}"
