"""The three base libraries, declared once: population, legal persons, electronic licences."""

from __future__ import annotations

from schemas.catalogue import Field, Library, PersonalData, Sharing

U, C, N = Sharing.UNCONDITIONAL, Sharing.CONDITIONAL, Sharing.NOT_SHAREABLE
IDENT, PERS, SENS = PersonalData.IDENTIFIER, PersonalData.PERSONAL, PersonalData.SENSITIVE

# Record metadata the hub fills in for every library.
RECORD_METADATA = (
    Field("source_department", "string", "来源部门", U, code_table="department", metadata=True),
    Field("source_record_id", "string", "来源记录标识", N, metadata=True),
    Field("source_updated_at", "timestamp", "来源更新时间", U, metadata=True),
    Field("ingested_at", "timestamp", "入库时间", N, metadata=True),
    Field("run_id", "string", "批次标识", N, metadata=True),
)

POPULATION = Library(
    name="population",
    label="人口库",
    key="id_number",
    table="population",
    description="One golden record per person, keyed by the 18-character resident ID number (GB 11643).",
    fields=(
        Field("id_number", "string", "公民身份号码", C, IDENT, ("public_security",), True, validator="resident_id"),
        Field("name", "string", "姓名", C, PERS, ("public_security",), True),
        Field("gender", "string", "性别", U, PERS, ("public_security",), True, code_table="gender"),
        Field("birth_date", "date", "出生日期", C, PERS, ("public_security",), True),
        Field("ethnicity", "string", "民族", C, SENS, ("public_security",), code_table="ethnicity"),
        Field("household_address", "string", "户籍地址", C, PERS, ("public_security",)),
        Field("household_region", "string", "户籍地行政区划", U, PERS, ("public_security",), code_table="region"),
        Field("residence_address", "string", "现居住地址", C, PERS, ("public_security", "hrss")),
        Field("marital_status", "string", "婚姻状况", C, PERS, ("civil_affairs",), code_table="marital_status"),
        Field("life_status", "string", "生存状态", U, PERS, ("health", "public_security"), True, code_table="life_status",
              terminal=("deceased",)),
        Field("life_status_date", "date", "生存状态变更日期", C, PERS, ("health", "public_security")),
        Field("phone", "string", "联系电话", N, PERS, ("public_security",)),
        *RECORD_METADATA,
    ),
)

LEGAL_PERSON = Library(
    name="legal_person",
    label="法人库",
    key="credit_code",
    table="legal_person",
    description="One record per enterprise, public institution or social organisation, keyed by the unified social credit code (GB 32100).",
    fields=(
        Field("credit_code", "string", "统一社会信用代码", U, authorities=("market_regulation", "establishment_office", "civil_affairs"), required=True, validator="credit_code"),
        Field("name", "string", "名称", U, authorities=("market_regulation", "establishment_office", "civil_affairs"), required=True),
        Field("entity_type", "string", "主体类型", U, authorities=("market_regulation", "establishment_office", "civil_affairs"), required=True, code_table="entity_type"),
        Field("legal_rep_name", "string", "法定代表人姓名", U, PERS, ("market_regulation", "establishment_office", "civil_affairs")),
        Field("legal_rep_id_number", "string", "法定代表人身份号码", C, IDENT, ("market_regulation", "establishment_office", "civil_affairs"), validator="resident_id"),
        Field("registered_capital", "decimal", "注册资本（万元）", U, authorities=("market_regulation",)),
        Field("established_on", "date", "成立日期", U, authorities=("market_regulation", "establishment_office", "civil_affairs"), required=True),
        Field("registering_authority", "string", "登记机关", U, authorities=("market_regulation", "establishment_office", "civil_affairs")),
        Field("region", "string", "行政区划", U, authorities=("market_regulation",), code_table="region"),
        Field("address", "string", "住所", U, authorities=("market_regulation", "establishment_office", "civil_affairs")),
        Field("business_scope", "string", "经营范围", U, authorities=("market_regulation",)),
        Field("tax_status", "string", "纳税状态", C, authorities=("tax",)),
        Field("status", "string", "登记状态", U, authorities=("market_regulation", "establishment_office", "civil_affairs"), required=True, code_table="legal_person_status"),
        Field("status_date", "date", "状态变更日期", U, authorities=("market_regulation", "establishment_office", "civil_affairs")),
        *RECORD_METADATA,
    ),
)

LICENCE = Library(
    name="licence",
    label="电子证照库",
    key="licence_number",
    table="licence",
    description="Electronic licences and certificates, keyed by licence number, linked to the holder's ID number or credit code.",
    fields=(
        Field("licence_number", "string", "证照编号", U, required=True),
        Field("licence_type", "string", "证照类型", U, required=True, code_table="licence_type"),
        Field("holder_type", "string", "持证主体类型", U, required=True, code_table="holder_type"),
        Field("holder_id", "string", "持证主体代码", C, IDENT, required=True),
        Field("holder_name", "string", "持证主体名称", C, PERS),
        Field("issuer", "string", "颁发机构", U, code_table="department"),
        Field("issued_on", "date", "颁发日期", U, required=True),
        Field("valid_from", "date", "有效期起", U, required=True),
        Field("valid_to", "date", "有效期止", U),
        Field("status", "string", "证照状态", U, required=True, code_table="licence_status"),
        Field("status_date", "date", "状态变更日期", U),
        Field("status_history", "json", "状态历史", C),
        Field("file_digest", "string", "证照文件摘要（SHA-256）", U),
        *RECORD_METADATA,
    ),
)

LIBRARIES: dict[str, Library] = {lib.name: lib for lib in (POPULATION, LEGAL_PERSON, LICENCE)}


def library(name: str) -> Library:
    """The library called ``name``; KeyError lists the known ones."""
    try:
        return LIBRARIES[name]
    except KeyError:
        raise KeyError(f"unknown library {name!r}; known: {', '.join(LIBRARIES)}") from None
