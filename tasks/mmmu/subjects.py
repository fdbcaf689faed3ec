"""MMMU's subject tables (``mmmu/utils/data_utils.py`` of MMMU-Benchmark/MMMU, bb0b95a).

``SUBJECTS`` is ``CAT_SHORT2LONG`` in its order (by short name: Accounting, Agriculture,
Architecture_and_Engineering, Art, ...): the order in which ``main_parse_and_eval.py --subject ALL`` parses
the subjects, and so the order of the seeded random draws. ``DISCIPLINES`` is ``DOMAIN_CAT2SUB_CAT``: the six
disciplines and their subjects in the order the result tables list them.
"""

from __future__ import annotations

SUBJECT_SHORT_NAMES: dict[str, str] = {
    "acc": "Accounting",
    "agri": "Agriculture",
    "arch": "Architecture_and_Engineering",
    "art": "Art",
    "art_theory": "Art_Theory",
    "bas_med": "Basic_Medical_Science",
    "bio": "Biology",
    "chem": "Chemistry",
    "cli_med": "Clinical_Medicine",
    "cs": "Computer_Science",
    "design": "Design",
    "diag_med": "Diagnostics_and_Laboratory_Medicine",
    "econ": "Economics",
    "elec": "Electronics",
    "ep": "Energy_and_Power",
    "fin": "Finance",
    "geo": "Geography",
    "his": "History",
    "liter": "Literature",
    "manage": "Manage",
    "mark": "Marketing",
    "mate": "Materials",
    "math": "Math",
    "mech": "Mechanical_Engineering",
    "music": "Music",
    "phar": "Pharmacy",
    "phys": "Physics",
    "psy": "Psychology",
    "pub_health": "Public_Health",
    "socio": "Sociology",
}
SUBJECTS: tuple[str, ...] = tuple(SUBJECT_SHORT_NAMES.values())

DISCIPLINES: dict[str, tuple[str, ...]] = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": (
        "Basic_Medical_Science",
        "Clinical_Medicine",
        "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy",
        "Public_Health",
    ),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": (
        "Agriculture",
        "Architecture_and_Engineering",
        "Computer_Science",
        "Electronics",
        "Energy_and_Power",
        "Materials",
        "Mechanical_Engineering",
    ),
}
DISCIPLINE_OF: dict[str, str] = {s: d for d, subjects in DISCIPLINES.items() for s in subjects}


def subject_of(sample_id: str) -> str:
    """The subject an MMMU id names (``validation_Art_Theory_3`` -> ``Art_Theory``), as ``main_eval_only.py``
    reads it: the parts between the first and the last ``_``."""
    return "_".join(sample_id.split("_")[1:-1])


def question_number(sample_id: str) -> int:
    """The number an id ends with (0 when it ends with none)."""
    tail = sample_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0
