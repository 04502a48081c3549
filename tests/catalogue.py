"""A small synthetic city for the unit tests, written in code: what the tests judge, route and
show, and nothing else. The demo city (config/catalogue/) is the demo's, and only its own
tests read it, so the demo can grow (stacks, new districts) without moving a unit test.

It goes through the loader like any deployment's catalogue: written as YAML to a folder and
read by :func:`~ecowatch.config.catalogue.load_catalogue`, so its cross-checks apply.

The city: two districts, four grids, six outfalls (two with a card-swipe discharge meter),
three air stations, one stack.

- ``S-OUT-001`` (E-001, chemicals; G-KC-01): GB 8978-1996 first grade, a permit at COD 80 and
  NH3-N 10 mg/L; its COD monitor ``33080200000001`` and meter ``33080200M00001`` (a year from
  1 July, 25 t COD).
- ``S-OUT-002`` (E-002, a treatment plant; G-KC-01): GB 18918-2002 1A, a permit at COD 40 and
  NH3-N 2 (4 in the cold).
- ``S-OUT-003`` (E-003; G-LY-01): first grade, a permit with no stricter limit; a meter with
  a seasonal month split. ``S-OUT-004`` (E-004; G-QJ-01): a permit at COD 80, a meter.
  ``S-OUT-005`` (E-005; G-LY-01): 1A, no permit. ``S-OUT-006`` (E-006; G-QJ-01): a permit at
  COD 80, a small meter.
- ``S-AIR-001`` (G-KC-01) and ``S-AIR-002`` (G-KC-02): GB 3095-2026, transitional grade II;
  ``S-AIR-003`` (G-LY-01), a background station in a class 1 zone: grade I.
- ``S-STK-001`` (E-007, a coal-fired heat and power plant; G-KC-02): a stack under GB 13223-2011
  ``coal_existing`` (reference oxygen 6 %; standard SO2 200, NOx 100, PM 30 mg/m³, hourly) and a
  permit at ultra-low emission (超低排放): PM 10, SO2 35, NOx 50 mg/m³ at 6 % O2. Its
  ``flue_gas_monitor`` ``33080200G00001`` reports every flue-gas code (:data:`FLUE_GAS`). Worked
  example (../shared/notes/flue-gas-marks-validity.md): SO2 30 mg/m³ measured at 9 % O2 is
  30 × 15/12 = 37.5 at 6 %, over the permit's 35.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ecowatch.config.catalogue import Catalogue, load_catalogue

WATER = ["w00000", "w01018", "w21003", "w01001"]  # flow, COD, NH3-N, pH
METERED = ["w00000", "w01018", "w21003"]
AIR = ["a34004", "a34002", "a21026", "a21004", "a05024", "a21005"]
# PM, SO2, NOx, NO, NO2, then the flue gas's state: O2, flow, velocity, temperature, pressure,
# moisture.
FLUE_GAS = [
    "a34013",
    "a21026",
    "a21002",
    "a21003",
    "a21004",
    "a19001",
    "a00000",
    "a01011",
    "a01012",
    "a01013",
    "a01014",
]
ULTRA_LOW = {"a34013": 10, "a21026": 35, "a21002": 50}  # mg/m³ at 6 % O2


def _officer(id_: str, name: str, role: str | None = None) -> dict[str, Any]:
    entry = {"id": id_, "name": name, "phone": "0570-0000000"}
    entry["notify_env"] = "ECOWATCH_NOTIFY_" + id_.replace("-", "_")
    return entry | ({"role": role} if role else {})


GRIDS = [
    {
        "id": "G-KC-01",
        "name": "柯城区第一网格",
        "district": "柯城区",
        "officers": [
            _officer("O-KC-01", "王建国"),
            _officer("O-KC-02", "李敏"),
            _officer("S-KC", "赵志强", "supervisor"),
        ],
    },
    {
        "id": "G-KC-02",
        "name": "柯城区第二网格",
        "district": "柯城区",
        "officers": [_officer("O-KC-03", "钱丽娟"), _officer("S-KC", "赵志强", "supervisor")],
    },
    {
        "id": "G-QJ-01",
        "name": "衢江区第一网格",
        "district": "衢江区",
        "officers": [_officer("O-QJ-01", "陈晓峰"), _officer("S-QJ", "周海燕", "supervisor")],
    },
    {
        "id": "G-LY-01",
        "name": "龙游县工业园区网格",
        "district": "龙游县",
        "officers": [_officer("O-LY-01", "徐立新"), _officer("S-LY", "吴国平", "supervisor")],
    },
]

ENTERPRISES = [
    {
        "id": f"E-00{n}",
        "name": name,
        "industry": industry,
        "contact": {
            "name": contact,
            "phone": "0570-0001000",
            "notify_env": f"ECOWATCH_NOTIFY_E_00{n}",
        },
    }
    for n, name, industry, contact in (
        (1, "衢州巨化精细化工有限公司", "chemical", "张伟"),
        (2, "衢州市柯城污水处理厂", "wastewater_treatment", "刘静"),
        (3, "金禾特种纸业有限公司", "paper", "王芳"),
        (4, "衢江区恒達印染有限公司", "textile_dyeing", "朱丽"),
        (5, "城东污水处理厂", "wastewater_treatment", "陈刚"),
        (6, "衢州元立电镀有限公司", "electroplating", "马超"),
        (7, "衢州柯城热电有限公司", "thermal_power", "沈涛"),
    )
]


def _monitor(id_: str) -> dict[str, Any]:
    return {"id": id_, "model": "outfall_monitor", "pollutants": WATER}


def _meter(id_: str, card: str, starts: str, annual: dict[str, float], **month: Any) -> dict:
    quota = {"card": card, "year_starts": starts, "annual": annual} | month
    return {"id": id_, "model": "discharge_meter", "pollutants": METERED, "quota": quota}


def _outfall(n: int, enterprise: int, grid: str, district: str, **facts: Any) -> dict[str, Any]:
    return {
        "id": f"S-OUT-00{n}",
        "name": f"{ENTERPRISES[enterprise - 1]['name']}排口",
        "kind": "outfall",
        "enterprise": f"E-00{enterprise}",
        "district": district,
        "grid": grid,
        "lat": 28.9 + n / 100,
        "lon": 118.8 + n / 100,
        **facts,
    }


FIRST_GRADE = {"id": "GB 8978-1996", "class": "first_grade"}
CLASS_1A = {"id": "GB 18918-2002", "class": "1A"}

SITES = [
    _outfall(
        1,
        1,
        "G-KC-01",
        "柯城区",
        name="巨化精细化工总排口",
        standard=FIRST_GRADE,
        permit={"number": "91330800MA28F0A01X001P", "limits": {"w01018": 80, "w21003": 10}},
        devices=[
            _monitor("33080200000001"),
            _meter(
                "33080200M00001",
                "QZ-IC-0001",
                "07-01",
                {"w00000": 365000, "w01018": 25000, "w21003": 2500},
                monthly="equal",
            ),
        ],
    ),
    _outfall(
        2,
        2,
        "G-KC-01",
        "柯城区",
        standard=CLASS_1A,
        permit={
            "number": "12330802MB0A0B0022001P",
            "limits": {"w01018": 40, "w21003": {"max": 2, "low_temp_max": 4}},
        },
        devices=[_monitor("33080200000002")],
    ),
    _outfall(
        3,
        3,
        "G-LY-01",
        "龙游县",
        standard=FIRST_GRADE,
        permit={"number": "91330825MA2A0C0033001P"},
        devices=[
            _monitor("33082500000003"),
            _meter(
                "33080200M00002",
                "QZ-IC-0002",
                "01-01",
                {"w00000": 730000, "w01018": 58000, "w21003": 4000},
                monthly={"jan": 8, "feb": 5, "mar": 9, "apr": 9, "may": 9, "jun": 9}
                | dict.fromkeys(("jul", "aug", "sep", "oct", "nov", "dec"), 8.5),
            ),
        ],
    ),
    _outfall(
        4,
        4,
        "G-QJ-01",
        "衢江区",
        standard=FIRST_GRADE,
        permit={"number": "91330803MA2B0D0044001P", "limits": {"w01018": 80, "w21003": 10}},
        devices=[
            _monitor("33080300000004"),
            _meter(
                "33080200M00003",
                "QZ-IC-0003",
                "07-01",
                {"w00000": 547500, "w01018": 36000, "w21003": 3000},
            ),
        ],
    ),
    _outfall(5, 5, "G-LY-01", "龙游县", standard=CLASS_1A, devices=[_monitor("33082500000005")]),
    _outfall(
        6,
        6,
        "G-QJ-01",
        "衢江区",
        standard=FIRST_GRADE,
        permit={"number": "91330803MA2B0E0066001P", "limits": {"w01018": 80}},
        devices=[
            _monitor("33080300000006"),
            _meter(
                "33080200M00004",
                "QZ-IC-0004",
                "01-01",
                {"w00000": 36500, "w01018": 2500, "w21003": 300},
            ),
        ],
    ),
] + [
    {
        "id": f"S-AIR-00{n}",
        "name": name,
        "kind": "air_station",
        "district": district,
        "grid": grid,
        "lat": 28.96 + n / 100,
        "lon": 118.87,
        "control": control,
        "standard": {"id": "GB 3095-2026", "class": f"transitional_grade_{grade}"},
        "devices": [{"id": f"33080200A0000{n}", "model": "air_station", "pollutants": AIR}],
    }
    for n, name, district, grid, control, grade in (
        (1, "衢州市监测站", "柯城区", "G-KC-01", "national", "II"),
        (2, "高新园区", "柯城区", "G-KC-02", "provincial", "II"),
        # A class 1 zone (a nature reserve): grade I.
        (3, "湖南镇背景站", "龙游县", "G-LY-01", "municipal", "I"),
    )
]

# A stack under ultra-low emission (超低排放) limits: the judging's unit tests use it.
SITES.append(
    {
        "id": "S-STK-001",
        "name": "柯城热电1号机组烟囱",
        "kind": "stack",
        "enterprise": "E-007",
        "district": "柯城区",
        "grid": "G-KC-02",
        "lat": 28.935,
        "lon": 118.82,
        "standard": {"id": "GB 13223-2011", "class": "coal_existing"},
        "permit": {"number": "91330800MA2G0H0071001P", "limits": ULTRA_LOW},
        "devices": [{"id": "33080200G00001", "model": "flue_gas_monitor", "pollutants": FLUE_GAS}],
    }
)

# The escalation the tests reason about: the legal judgement goes to the officers at once,
# an hourly exceedance after a 2 h deadline, an early warning only to the enterprise.
POLICIES = [
    {
        "rule": "daily_over_limit",
        "pending": 0,
        "deadline": 0,
        "ack_timeout": "30m",
        "renotify": 1,
        "hold": "1d",
        "measure": "责令改正，拒不改正的按日连续处罚（《环境保护法》第五十九条）",
    },
    {
        "rule": "hourly_over_limit",
        "pending": 0,
        "deadline": "2h",
        "hold": "2h",
        "measure": "责令限期改正；超标持续的，依法处罚并可按日连续处罚（《环境保护法》第五十九条）",
    },
    {
        "rule": "realtime_over_limit",
        "pending": "15m",
        "deadline": "1h",
        "hold": "30m",
        "escalate": False,
    },
    {
        "rule": "offline",
        "pending": "30m",
        "deadline": "2h",
        "hold": "30m",
        "measure": "现场核查在线监测设备运行情况",
    },
    {"rule": "low_transmission_validity", "pending": 0, "deadline": "7d", "hold": "1d"},
    {
        "rule": "quota_exhausted",
        "pending": 0,
        "deadline": 0,
        "hold": "1h",
        "measure": "阀门已关闭；继续排放的，责令限制生产、停产整治（《环境保护法》第六十条）",
    },
    {"rule": "quota_warning", "pending": 0, "deadline": "1d", "hold": "1h"},
    {"rule": "quota_near_exhaustion", "pending": 0, "deadline": "4h", "hold": "1h"},
    {
        "rule": "aqi_over_100",
        "pending": "1h",
        "deadline": "3h",
        "hold": "2h",
        "measure": "排查网格内重点污染源，落实管控措施",
    },
    {
        "severity": "warning",
        "pending": "30m",
        "deadline": "4h",
        "hold": "1h",
        "measure": "核查监测数据真实性（自动监测数据标记规则）",
    },
]


def write_catalogue(folder: Path) -> Path:
    """The synthetic city as catalogue files in ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, key, entries in (
        ("grids.yaml", "grids", GRIDS),
        ("enterprises.yaml", "enterprises", ENTERPRISES),
        ("sites.yaml", "sites", SITES),
        ("policies.yaml", "policies", POLICIES),
    ):
        text = yaml.safe_dump({key: entries}, allow_unicode=True, sort_keys=False)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def synthetic_catalogue(folder: Path) -> Catalogue:
    return load_catalogue(write_catalogue(folder))
