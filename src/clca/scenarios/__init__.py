"""Sotopia-style two-person scenarios: the schema, shipped seeds, cultural adaptation and
norm-based generation through the run database, Sotopia import/export, statistics.

    from clca.scenarios import AdaptConfig, adapt_scenarios, iter_scenarios
    summary = await adapt_scenarios(store, llm, "Japan", AdaptConfig(n=10))
"""

from ._generate import AdaptConfig, adapt_scenarios, generate_from_norms, load_seed_pool
from ._io import load_seeds, read_scenarios, write_scenarios
from ._names import culture_locales, name_problem
from ._norms import Norm, NormsConfig, expand_norms, load_norms, load_norms_config, select_norms, source_counts
from ._schema import AdaptedDraft, Character, DraftCharacter, Provenance, Relationship, Scenario, ScenarioDraft
from ._sotopia import (
    SotopiaImport,
    export_sotopia,
    fetch_sotopia_hf,
    import_sotopia,
    read_sotopia_files,
    sotopia_seeds,
    to_sotopia_records,
)
from ._stats import CultureStats, iter_scenarios, jaccard, near_duplicate_rate, scenario_stats
from ._validate import check_scenario, goal_revealed

__all__ = [
    "AdaptConfig",
    "AdaptedDraft",
    "Character",
    "CultureStats",
    "DraftCharacter",
    "Norm",
    "NormsConfig",
    "Provenance",
    "Relationship",
    "Scenario",
    "ScenarioDraft",
    "SotopiaImport",
    "adapt_scenarios",
    "check_scenario",
    "expand_norms",
    "export_sotopia",
    "fetch_sotopia_hf",
    "generate_from_norms",
    "goal_revealed",
    "import_sotopia",
    "iter_scenarios",
    "jaccard",
    "load_norms",
    "load_norms_config",
    "load_seed_pool",
    "load_seeds",
    "near_duplicate_rate",
    "read_scenarios",
    "read_sotopia_files",
    "scenario_stats",
    "select_norms",
    "sotopia_seeds",
    "source_counts",
    "to_sotopia_records",
    "write_scenarios",
    "culture_locales",
    "name_problem",
]
