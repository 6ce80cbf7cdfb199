"""The named masking policies: each one's SQL gives what its Python gives, and they mask as documented."""

from __future__ import annotations

import duckdb
import pytest

from hub.masking import ANALYST, LOG, POLICIES, Policy

IDS = [None, "", "X", "1234", "12345", "11010519491231002X", "110105194912310021", "91110000600037341L", "A1B2C3"]
TEXTS = [None, "", "张", "张三", "张三丰", "Smith"]


@pytest.mark.parametrize("policy", POLICIES.values(), ids=list(POLICIES))
def test_sql_agrees_with_python(policy: Policy) -> None:
    conn = duckdb.connect()
    for values, python, sql in ((IDS, policy.identifier, policy.identifier_sql), (TEXTS, policy.text, policy.text_sql)):
        for value in values:
            (got,) = conn.execute(f"SELECT {sql('v')} FROM (SELECT ?::VARCHAR AS v)", [value]).fetchone()
            assert got == python(value), (policy.name, value)


def test_log_keeps_prefix_and_last_character() -> None:
    assert LOG.identifier("11010519491231002X") == "1101*************X"
    assert LOG.text("张三丰") == "张**" and LOG.identifier(None) == "<empty>"


def test_analyst_keeps_region_and_birth_year() -> None:
    assert ANALYST.identifier("11010519491231002X") == "1101051949"
    assert ANALYST.identifier("91110000600037341L") == "91110000600037341L"  # a credit code is not personal
    assert ANALYST.text("张三丰") == "张**" and ANALYST.text(None) is None
