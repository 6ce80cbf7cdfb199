"""National and hub code tables: every coded field of the libraries names one of these."""

from __future__ import annotations

# Departments that feed or query the hub (code -> Chinese name, English name).
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "public_security": ("公安局（户籍）", "Public security (household registration)"),
    "civil_affairs": ("民政局", "Civil affairs"),
    "health": ("卫生健康委员会", "Health commission"),
    "hrss": ("人力资源和社会保障局", "Human resources and social security"),
    "market_regulation": ("市场监督管理局", "Market regulation"),
    "establishment_office": ("机构编制委员会办公室", "Institution-establishment office"),
    "tax": ("税务局", "Tax"),
    "housing": ("住房和城乡建设局", "Housing and urban-rural development"),
    "education": ("教育局", "Education"),
    "transport": ("交通运输局", "Transport"),
    "citizen_portal": ("政务服务门户", "Citizen service portal"),
    "hub": ("大数据中心", "Data-sharing hub"),
}

# GB/T 2261.1-2003 human sex codes.
GENDER = {"0": "未知的性别", "1": "男", "2": "女", "9": "未说明的性别"}

# GB/T 3304-1991 ethnic group codes.
ETHNICITY = {
    "01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族", "06": "苗族", "07": "彝族",
    "08": "壮族", "09": "布依族", "10": "朝鲜族", "11": "满族", "12": "侗族", "13": "瑶族", "14": "白族",
    "15": "土家族", "16": "哈尼族", "17": "哈萨克族", "18": "傣族", "19": "黎族", "20": "傈僳族", "21": "佤族",
    "22": "畲族", "23": "高山族", "24": "拉祜族", "25": "水族", "26": "东乡族", "27": "纳西族", "28": "景颇族",
    "29": "柯尔克孜族", "30": "土族", "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族",
    "35": "撒拉族", "36": "毛南族", "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族",
    "41": "塔吉克族", "42": "怒族", "43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族", "46": "德昂族",
    "47": "保安族", "48": "裕固族", "49": "京族", "50": "塔塔尔族", "51": "独龙族", "52": "鄂伦春族",
    "53": "赫哲族", "54": "门巴族", "55": "珞巴族", "56": "基诺族", "97": "其他", "98": "外国血统中国籍人士",
}

# GB/T 2261.2-2003 marital status codes.
MARITAL_STATUS = {
    "10": "未婚", "20": "已婚", "21": "初婚", "22": "再婚", "23": "复婚", "30": "丧偶", "40": "离婚", "90": "未说明的婚姻状况",
}

LIFE_STATUS = {"living": "健在", "deceased": "死亡", "emigrated": "迁出（出境）"}

# GB 32100-2015: registering-authority code -> (name, {entity-type code: name}).
CREDIT_CODE_AUTHORITIES: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": ("司法行政", {"1": "律师执业机构", "2": "公证处", "3": "基层法律服务所", "4": "司法鉴定机构", "5": "仲裁委员会", "9": "其他"}),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": ("旅游", {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地代表机构", "9": "其他"}),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": "其他"}),
}

# Legal-person entity types as the library records them (registering authority + type, e.g. "91").
ENTITY_TYPE = {
    auth + kind: f"{auth_name}·{kind_name}"
    for auth, (auth_name, kinds) in CREDIT_CODE_AUTHORITIES.items()
    for kind, kind_name in kinds.items()
}

LEGAL_PERSON_STATUS = {
    "active": "存续（在营、开业、在册）",
    "revoked": "吊销",
    "deregistered": "注销",
    "moved_out": "迁出",
    "suspended": "停业",
}

HOLDER_TYPE = {"person": "自然人", "legal_person": "法人"}

# "cancelled" (注销): the licence lapsed because its holder ceased to exist (行政许可法 art. 70: the holder
# died, or the legal person was terminated), as opposed to "revoked" (撤销/吊销) by the issuer.
LICENCE_STATUS = {"issued": "已颁发", "renewed": "已换发", "suspended": "暂停", "revoked": "已撤销", "expired": "已过期",
                  "cancelled": "已注销"}
# Statuses after which a licence no longer changes by itself (a new licence is issued instead).
FINAL_LICENCE_STATUSES = ("expired", "revoked", "cancelled")

# The licence catalogue: type code -> (Chinese name, issuing department, holder type).
LICENCE_TYPES: dict[str, tuple[str, str, str]] = {
    "business_licence": ("营业执照", "market_regulation", "legal_person"),
    "food_business": ("食品经营许可证", "market_regulation", "legal_person"),
    "road_transport": ("道路运输经营许可证", "transport", "legal_person"),
    "construction_qualification": ("建筑业企业资质证书", "housing", "legal_person"),
    "medical_practitioner": ("医师执业证书", "health", "person"),
    "teacher_qualification": ("教师资格证书", "education", "person"),
    "marriage_certificate": ("结婚证", "civil_affairs", "person"),
    "vocational_qualification": ("职业资格证书", "hrss", "person"),
}
LICENCE_TYPE = {code: name for code, (name, _dept, _holder) in LICENCE_TYPES.items()}
# Licences that record a civil-status act rather than grant a personal qualification: the holder's death
# ends the marriage (the survivor's marital status changes) but does not cancel the certificate.
OUTLIVE_HOLDER = frozenset({"marriage_certificate"})

TABLES: dict[str, dict[str, str]] = {
    "department": {code: zh for code, (zh, _en) in DEPARTMENTS.items()},
    "gender": GENDER,
    "ethnicity": ETHNICITY,
    "marital_status": MARITAL_STATUS,
    "life_status": LIFE_STATUS,
    "entity_type": ENTITY_TYPE,
    "legal_person_status": LEGAL_PERSON_STATUS,
    "holder_type": HOLDER_TYPE,
    "licence_status": LICENCE_STATUS,
    "licence_type": LICENCE_TYPE,
}


def table(name: str) -> dict[str, str]:
    """The code table ``name`` (code -> Chinese label); KeyError names the unknown table."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown code table {name!r}; known: {', '.join(sorted(TABLES))}") from None
