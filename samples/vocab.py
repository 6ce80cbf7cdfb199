"""Word lists the generator samples from: Faker's zh_CN data, plus the few lists Faker lacks."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from faker.providers.address.zh_CN import Provider as _Address
from faker.providers.company.zh_CN import Provider as _Company
from faker.providers.person.zh_CN import Provider as _Person
from faker.providers.phone_number.zh_CN import Provider as _Phone

from schemas.codes import ETHNICITY

SURNAMES: tuple[str, ...] = tuple(_Person.last_names)
_SURNAME_WEIGHTS = np.array(list(_Person.last_names.values()), dtype=np.float64)
SURNAME_P = _SURNAME_WEIGHTS / _SURNAME_WEIGHTS.sum()

# Given names: whole Faker names, or two characters drawn from the same gender's names.
GIVEN_MALE: tuple[str, ...] = tuple(_Person.first_names_male)
GIVEN_FEMALE: tuple[str, ...] = tuple(_Person.first_names_female)
CHARS_MALE: tuple[str, ...] = tuple(sorted(set("".join(GIVEN_MALE))))
CHARS_FEMALE: tuple[str, ...] = tuple(sorted(set("".join(GIVEN_FEMALE))))

PHONE_PREFIXES = np.array(_Phone.phonenumber_prefixes, dtype=np.int64)

# Street names: Faker's street formats are "{city or surname}{路|街}"; we add a few common suffixes.
_STREET_STEMS = tuple(dict.fromkeys(
    [c for c in _Address.cities if len(c) <= 3] + list(_Address.districts) + list(SURNAMES[:60])
    + ["人民", "解放", "中山", "建设", "和平", "文化", "胜利", "新华", "学院", "环城", "文三", "体育场", "延安", "长江", "黄河"]
))
_STREET_SUFFIXES = ("路", "街", "大道", "东路", "西路", "南路", "北路", "中路")
STREETS: tuple[str, ...] = tuple(stem + suffix for stem in _STREET_STEMS for suffix in _STREET_SUFFIXES)
TOWNS: tuple[str, ...] = tuple(d + "镇" for d in dict.fromkeys(_Address.districts))
VILLAGES: tuple[str, ...] = tuple(
    [s + "家" for s in SURNAMES[:80]] + [s + w for s in SURNAMES[:20] for w in ("庄", "湾", "坪", "岭")]
)

COMPANY_WORDS: tuple[str, ...] = tuple(dict.fromkeys(_Company.company_prefixes))
INDUSTRIES: tuple[str, ...] = (
    "科技", "网络", "信息", "传媒", "贸易", "建筑工程", "餐饮管理", "物流", "电子", "机械", "医药",
    "食品", "文化传播", "教育咨询", "农业开发", "房地产开发", "环保科技", "新材料", "服装", "汽车服务",
)
COMPANY_SUFFIXES: tuple[str, ...] = ("有限公司", "有限责任公司", "股份有限公司")
COMPANY_SUFFIX_P = np.array([0.78, 0.17, 0.05])
SHOPS: tuple[str, ...] = ("便利店", "小吃店", "五金店", "理发店", "水果店", "服装店", "面馆", "超市", "修理部", "烟酒店")
COOPERATIVE_PRODUCTS: tuple[str, ...] = ("茶叶", "蔬菜", "水果", "养殖", "花卉", "粮食", "中药材", "食用菌")
BUSINESS_SCOPES: tuple[str, ...] = (
    "技术开发、技术咨询、技术服务", "软件开发", "信息系统集成服务", "日用百货销售", "食品销售", "餐饮服务",
    "道路货物运输", "建筑工程施工", "房地产开发经营", "企业管理咨询", "广告设计、制作、代理", "货物进出口",
    "服装服饰零售", "机械设备租赁", "农产品初加工", "组织文化艺术交流活动", "教育咨询服务", "家政服务",
    "物业管理", "汽车零配件销售",
)
SCOPE_TAIL = "（依法须经批准的项目，经相关部门批准后方可开展经营活动）"

SOCIETY_TRADES: tuple[str, ...] = (
    "餐饮行业", "软件行业", "物流", "书法家", "摄影家", "老年人体育", "个体劳动者", "消费者权益保护",
    "青年企业家", "律师", "会计", "志愿者", "足球", "围棋", "慈善",
)
NONPROFIT_KINDS: tuple[str, ...] = ("培训学校", "养老院", "幼儿园", "康复中心", "社会工作服务中心", "文化艺术中心")
FOUNDATION_KINDS: tuple[str, ...] = ("慈善基金会", "教育基金会", "助学基金会", "公益基金会")

# GB/T 3304 codes with rough population shares; the household system writes the name without 族.
_ETHNIC_SHARES = {
    "01": 91.1, "08": 1.4, "03": 0.8, "11": 0.75, "05": 0.8, "06": 0.8, "07": 0.7, "15": 0.7, "04": 0.45,
    "02": 0.45, "12": 0.22, "09": 0.2, "13": 0.2, "14": 0.15, "10": 0.13, "16": 0.12, "19": 0.1, "17": 0.1, "18": 0.09,
}


@lru_cache(maxsize=1)
def ethnicities() -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(GB/T 3304 codes, names without 族, probabilities); groups without a share get a small equal one."""
    codes = tuple(c for c in ETHNICITY if c not in {"97", "98"})
    share = np.array([_ETHNIC_SHARES.get(c, 0.01) for c in codes])
    names = tuple(ETHNICITY[c].removesuffix("族") for c in codes)
    return codes, names, share / share.sum()


# ICD-10 underlying causes of death commonly reported, with the health department's labels.
DEATH_CAUSES: tuple[tuple[str, str], ...] = (
    ("I21.9", "急性心肌梗死"), ("I63.9", "脑梗死"), ("I61.9", "脑出血"), ("C34.9", "肺恶性肿瘤"),
    ("C22.0", "肝细胞癌"), ("C16.9", "胃恶性肿瘤"), ("J44.9", "慢性阻塞性肺病"), ("J18.9", "肺炎"),
    ("E11.9", "2型糖尿病"), ("I10", "原发性高血压"), ("N18.9", "慢性肾脏病"), ("V89.2", "道路交通事故"),
    ("W19", "跌倒"), ("R54", "老年"),
)
DEATH_CAUSE_P = np.array([12, 14, 8, 10, 5, 5, 9, 6, 4, 6, 3, 3, 2, 13], dtype=np.float64) / 100
DEATH_PLACES: tuple[str, ...] = ("医疗卫生机构", "家中", "养老服务机构", "其他场所", "来院途中")
DEATH_PLACE_P = np.array([0.55, 0.36, 0.04, 0.03, 0.02])


@lru_cache(maxsize=1)
def foreign_names() -> dict[str, dict[str, tuple[str, ...]]]:
    """Latin-script names of foreign residents, upper case, letters only: Faker's en_US names and its ru_RU
    names romanised, as {"en"/"ru": {"surname_male", "surname_female", "given_male", "given_female": words}}."""
    from faker.decode import unidecode
    from faker.providers.person.en_US import Provider as English
    from faker.providers.person.ru_RU import Provider as Russian

    def clean(words) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        out = ("".join(ch for ch in unidecode(w).upper() if "A" <= ch <= "Z") for w in words)
        return tuple(dict.fromkeys(w for w in out if len(w) >= 2))

    return {
        "en": {"surname_male": clean(English.last_names), "surname_female": clean(English.last_names),
               "given_male": clean(English.first_names_male), "given_female": clean(English.first_names_female)},
        "ru": {"surname_male": clean(Russian.last_names_male), "surname_female": clean(Russian.last_names_female),
               "given_male": clean(Russian.first_names_male), "given_female": clean(Russian.first_names_female)},
    }
