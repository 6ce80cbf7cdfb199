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


# --- combined columns, sources without the library key, contributors omitting fields -----------

PEOPLE = """
sources:
  - name: {name}
    department: {department}
    kind: file_drop
    library: population
    url: file:///drop
    key: ID
{extra}    fields:
{fields}"""


def _load(tmp_path, fields: str, *, name: str = "people", department: str = "hrss", extra: str = ""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PEOPLE.format(name=name, department=department, extra=extra, fields=fields), encoding="utf-8")
    return load_sources(path)


def _problems(tmp_path, fields: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, fields, **kwargs)
    return caught.value.problems


def test_combined_columns_are_declared_with_columns_or_a_template(tmp_path):
    source = _load(tmp_path, """      id_number: SFZH
      name: {columns: [SURNAME, GIVEN], separator: " "}
      residence_address: {template: "{STREET_NO} {ADDRESS_1}, {SUBURB}"}
      birth_date: {template: "{YEAR}-{MONTH}-{DAY}", date_format: "%Y-%m-%d"}
""")["people"]
    assert source.fields["name"].columns == ["SURNAME", "GIVEN"]
    assert source.fields["name"].separator == " "
    assert source.fields["residence_address"].template == "{STREET_NO} {ADDRESS_1}, {SUBURB}"
    # The connectors read every column a combination names, once.
    assert source.columns == ["SFZH", "SURNAME", "GIVEN", "STREET_NO", "ADDRESS_1", "SUBURB", "YEAR", "MONTH", "DAY"]


def test_bad_combinations_are_refused_with_every_problem_at_once(tmp_path):
    problems = _problems(tmp_path, """      id_number: SFZH
      name: {columns: [XM]}
      residence_address: {template: "{STREET_NO} {ADDRESS_1"}
      household_address: {column: HJDZ, template: "{A} {B}"}
      phone: {column: DH, columns: [DH1, DH2]}
      birth_date: {template: "{}-{MONTH}"}
      marital_status: {template: "{HYZK!r}"}
      ethnicity: {template: "no placeholder"}
      life_status_date: {columns: [A, B], template: "{A}{B}"}
""")
    text = "\n".join(problems)
    assert "fields.name" in text and "columns needs at least two columns" in text
    assert "fields.residence_address" in text and "bad template" in text
    assert "fields.household_address" in text and "fields.phone" in text
    assert text.count("give exactly one of column, columns, template or value") == 3  # household_address, phone, life_status_date
    assert "fields.birth_date" in text and "placeholder {} does not name a column" in text
    assert "fields.marital_status" in text and "{HYZK!r}" in text
    assert "fields.ethnicity" in text and "names no column" in text
    assert len(problems) == 8  # one line per field, every one of them


def test_a_separator_goes_with_columns_only(tmp_path):
    problems = _problems(tmp_path, """      id_number: SFZH
      name: {template: "{A} {B}", separator: "-"}
""")
    assert any("separator" in p and "columns" in p for p in problems)


def test_a_source_may_declare_it_carries_no_key_of_the_library(tmp_path):
    source = _load(tmp_path, "      name: XM\n      gender: XB\n", extra="    carries_key: false\n")["people"]
    assert source.carries_key is False
    assert _load(tmp_path, "      id_number: SFZH\n", name="keyed")["keyed"].carries_key is True


def test_a_source_without_the_key_must_not_map_it_and_is_a_contributor(tmp_path):
    problems = _problems(tmp_path, "      id_number: SFZH\n      name: XM\n", extra="    carries_key: false\n")
    assert problems == ["source 'people': carries_key is false but the library key 'id_number' is mapped"]
    problems = _problems(tmp_path, "      name: XM\n", department="public_security",
                         extra="    carries_key: false\n    role: master\n")
    assert any("a master source carries the library key" in p for p in problems)


def test_without_carries_key_false_the_key_stays_required(tmp_path):
    problems = _problems(tmp_path, "      name: XM\n")
    assert problems == ["source 'people': required field 'id_number' of population is not mapped"]


def test_a_contributor_may_omit_required_fields_it_is_not_authoritative_for(tmp_path):
    # hrss is authoritative for the residence address only: name, sex, birth date come from public security.
    source = _load(tmp_path, "      id_number: SFZH\n      residence_address: XZZ\n",
                   extra="    authoritative: [residence_address]\n")["people"]
    assert set(source.fields) == {"id_number", "residence_address"}


def test_a_master_must_still_map_every_required_field(tmp_path):
    problems = _problems(tmp_path, "      id_number: SFZH\n      name: XM\n", department="public_security",
                         extra="    role: master\n")
    assert {p.split(": ", 1)[1] for p in problems} == {
        f"required field {f!r} of population is not mapped" for f in ("gender", "birth_date", "life_status")}
