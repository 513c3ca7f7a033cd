"""The synthetic tissue classes: names, display names, synonyms, colours and morphology, in one table.

`SUBTYPES[0]` is normal tissue; `SUBTYPES[1:]` are tumour subtypes. All are SYNTHETIC: they imitate how real
subtypes differ (nuclear size, density, shape, arrangement, stain hue) and are not real diagnoses. A cohort with K
subtypes uses `SUBTYPES[1:K+1]`. The default three are solid, glandular and nested carcinoma; solid and nested are
deliberately hard to tell apart inside a nest (they differ only subtly in nuclear size, density and cytoplasm;
nested tumour shows thin fibrous septa between large nests). Glandular vs normal glands differ in nuclear size,
crowding and layering.

Morphology numbers are in microns. Nuclei sit on a jittered lattice with `spacing_um` between sites, of which a
fraction `fill` is kept, restricted to the population's `region` of the arrangement ("epi", "stroma" or "any").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARRANGEMENTS = ("stroma", "sheet", "gland", "nest", "fascicle")
REGIONS = ("epi", "stroma", "any")
ALIGNS = ("random", "fibre", "radial")


@dataclass(frozen=True)
class Nuclei:
    """One population of nuclei."""

    spacing_um: float
    fill: float
    radius_um: float
    radius_sd: float = 0.1  # relative (pleomorphism)
    elongation: float = 1.2  # major/minor axis ratio
    align: str = "random"
    region: str = "any"
    h_od: float = 0.75  # hematoxylin optical density of the nucleus
    chromatin: float = 0.25  # relative strength of granular texture
    vesicular: float = 0.0  # 0 = solid dark, 1 = pale centre with dark rim
    nucleoli: float = 0.0  # probability of a visible nucleolus

    def __post_init__(self) -> None:
        if self.spacing_um <= 0 or self.radius_um <= 0:
            raise ValueError("Nuclei spacing_um and radius_um must be > 0")
        if not 0 <= self.fill <= 1:
            raise ValueError(f"Nuclei fill must be in [0, 1], got {self.fill}")
        if self.align not in ALIGNS or self.region not in REGIONS:
            raise ValueError(f"Nuclei align must be in {ALIGNS} and region in {REGIONS}")


@dataclass(frozen=True)
class Morphology:
    """How a tissue kind looks: arrangement, nuclei populations, stain amounts."""

    arrangement: str
    nuclei: tuple[Nuclei, ...]
    structure_um: float = 100.0  # gland / nest lattice spacing
    stroma_e: float = 0.5  # eosin OD of dense stroma
    fibre_period_um: float = 7.0
    cyto_e: float = 0.30  # eosin OD of epithelial cytoplasm
    cyto_h: float = 0.06  # hematoxylin OD of epithelial cytoplasm (amphophilic tint)
    normal_glands: float = 0.0  # probability per structure site of a normal gland (normal tissue)
    hue: float = 0.0  # small shift of the hematoxylin hue (+ bluer, - redder)
    vessels: float = 0.45  # probability per 110 um lattice site of a small red-cell-filled vessel in stroma

    def __post_init__(self) -> None:
        if self.arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {self.arrangement!r}")
        if not self.nuclei:
            raise ValueError("Morphology needs at least one Nuclei population")


@dataclass(frozen=True)
class Subtype:
    """One class of the synthetic cohort."""

    index: int
    name: str
    display: str
    synonyms: tuple[str, ...]
    color: tuple[int, int, int]
    morphology: Morphology = field(repr=False)


_FIBROBLASTS = Nuclei(spacing_um=16, fill=0.35, radius_um=2.2, radius_sd=0.15, elongation=3.8, align="fibre",
                      region="stroma", h_od=0.85, chromatin=0.15)
_LYMPHOCYTES = Nuclei(spacing_um=22, fill=0.18, radius_um=2.6, radius_sd=0.08, elongation=1.05,
                      region="stroma", h_od=1.15, chromatin=0.1)

SUBTYPES: tuple[Subtype, ...] = (
    Subtype(0, "normal", "Normal tissue (synthetic)",
            ("normal tissue", "benign tissue", "non-neoplastic tissue", "normal stroma with benign glands"),
            (60, 170, 80),
            Morphology("stroma", (_FIBROBLASTS, _LYMPHOCYTES,
                                  Nuclei(spacing_um=7.0, fill=0.95, radius_um=2.6, radius_sd=0.06, elongation=1.5,
                                         align="radial", region="epi", h_od=0.8, chromatin=0.15)),
                       structure_um=170, normal_glands=0.7, stroma_e=0.48, cyto_e=0.28)),
    Subtype(1, "solid_carcinoma", "Solid carcinoma (synthetic)",
            ("solid carcinoma", "poorly differentiated carcinoma with solid sheets",
             "carcinoma growing in solid sheets", "solid-pattern carcinoma"),
            (220, 60, 60),
            Morphology("sheet", (Nuclei(spacing_um=11.0, fill=0.92, radius_um=4.4, radius_sd=0.18, elongation=1.25,
                                        region="epi", h_od=0.72, chromatin=0.35, vesicular=0.55, nucleoli=0.5),
                                 _FIBROBLASTS),
                       structure_um=120, cyto_e=0.26, cyto_h=0.06, hue=0.02)),
    Subtype(2, "glandular_adenocarcinoma", "Glandular adenocarcinoma (synthetic)",
            ("adenocarcinoma", "gland-forming adenocarcinoma", "glandular carcinoma",
             "well to moderately differentiated adenocarcinoma"),
            (60, 110, 230),
            Morphology("gland", (Nuclei(spacing_um=7.0, fill=0.95, radius_um=3.3, radius_sd=0.15, elongation=2.2,
                                        align="radial", region="epi", h_od=0.9, chromatin=0.3, nucleoli=0.2),
                                 _FIBROBLASTS, _LYMPHOCYTES),
                       structure_um=95, cyto_e=0.30, cyto_h=0.07, hue=0.0)),
    Subtype(3, "nested_carcinoma", "Nested carcinoma (synthetic)",
            ("nested carcinoma", "carcinoma in nests", "carcinoma with nested growth pattern",
             "alveolar nests of tumour cells"),
            (240, 170, 40),
            Morphology("nest", (Nuclei(spacing_um=11.5, fill=0.88, radius_um=4.0, radius_sd=0.14, elongation=1.2,
                                       region="epi", h_od=0.75, chromatin=0.32, vesicular=0.45, nucleoli=0.35),
                                _FIBROBLASTS),
                       structure_um=180, cyto_e=0.28, cyto_h=0.06, hue=0.0)),
    Subtype(4, "spindle_cell_sarcoma", "Spindle cell sarcoma (synthetic)",
            ("spindle cell sarcoma", "sarcoma with spindle cells in fascicles", "fascicular spindle cell tumour",
             "malignant spindle cell neoplasm"),
            (170, 70, 200),
            Morphology("fascicle", (Nuclei(spacing_um=9.0, fill=0.85, radius_um=2.7, radius_sd=0.2, elongation=4.5,
                                           align="fibre", region="any", h_od=0.95, chromatin=0.3),),
                       stroma_e=0.6, fibre_period_um=5.0, hue=-0.02)),
    Subtype(5, "small_cell_carcinoma", "Small cell carcinoma (synthetic)",
            ("small cell carcinoma", "small round blue cell tumour", "high-grade neuroendocrine carcinoma",
             "carcinoma of small cells with scant cytoplasm"),
            (40, 190, 200),
            Morphology("sheet", (Nuclei(spacing_um=7.2, fill=0.95, radius_um=2.8, radius_sd=0.15, elongation=1.35,
                                        region="epi", h_od=1.05, chromatin=0.2),
                                 _FIBROBLASTS),
                       structure_um=120, cyto_e=0.16, cyto_h=0.1, hue=0.04)),
)

MAX_SUBTYPES = len(SUBTYPES) - 1
DEFAULT_SUBTYPES = 3


def kind_index(kind: str | int) -> int:
    """Index of a tissue kind given by index or name (e.g. 0, "normal", "solid_carcinoma")."""
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool):
        if 0 <= kind < len(SUBTYPES):
            return int(kind)
        raise ValueError(f"tissue kind index {kind} out of range 0..{len(SUBTYPES) - 1}")
    for s in SUBTYPES:
        if kind == s.name:
            return s.index
    raise ValueError(f"unknown tissue kind {kind!r}; known: {[s.name for s in SUBTYPES]}")


def cohort_classes(n_subtypes: int) -> tuple[Subtype, ...]:
    """Normal plus the first `n_subtypes` tumour subtypes."""
    if not 1 <= n_subtypes <= MAX_SUBTYPES:
        raise ValueError(f"number of subtypes must be 1..{MAX_SUBTYPES}, got {n_subtypes}")
    return SUBTYPES[: n_subtypes + 1]
