"""Source configuration: the sample file loads; a bad file is refused with every problem listed."""

from __future__ import annotations

import pytest

from connectors.config import SAMPLE_SOURCES, load_sources
from hub.errors import ConfigError


def test_sample_configuration_loads():
    sources = load_sources(SAMPLE_SOURCES)
    household = sources["household"]
    assert household.library == "population"
    assert household.fields["id_number"].column == "SFZH"
    assert household.fields["gender"].codes == {"男": "1", "女": "2"}


def test_every_problem_is_listed_at_once(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text(
        """
sources:
  - name: a
    department: nowhere
    kind: sql
    library: population
    role: master
    url: sqlite:///x.db
    table: T
    key: ID
    authoritative: [marital_status]
    fields:
      id_number: SFZH
      shoe_size: SIZE
      ethnicity: {column: MZ, by_label: no_such_table}
      gender: {column: XB, codes: {M: "7"}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_sources(bad)
    text = "\n".join(caught.value.problems)
    assert "unknown department 'nowhere'" in text
    assert "unknown field 'shoe_size'" in text
    assert "unknown code table 'no_such_table'" in text
    assert "codes not in gender: ['7']" in text
    assert "required field 'name'" in text and "required field 'birth_date'" in text
    assert "authoritative field 'marital_status' is not mapped" in text
    assert len(caught.value.problems) >= 7


def test_structural_errors_are_refused(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - name: a\n    kind: ftp\n")
    with pytest.raises(ConfigError) as caught:
        load_sources(bad)
    assert any("kind" in p for p in caught.value.problems)
    assert any("department" in p for p in caught.value.problems)


def test_department_not_authoritative_for_a_field_is_refused(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text(
        """
sources:
  - name: tax_people
    department: tax
    kind: sql
    library: population
    url: sqlite:///x.db
    table: T
    key: ID
    authoritative: [name]
    fields: {id_number: SFZH, name: XM}
"""
    )
    with pytest.raises(ConfigError, match="tax is not declared authoritative for population.name"):
        load_sources(bad)
