"""World Values Survey evaluation: survey files, personas, model answers, metrics, baselines.

from clca.wvs import EvalConfig, evaluate, format_table
result = await evaluate(store, llm, "base", EvalConfig(cultures=["Egypt"], compare=["United States"]))
print(format_table(result))
"""

from ..countries import country_name, region_name, resolve_country
from ._answer import PERSONA_STYLES, STYLES, Answer, answer_seed, ask, build_messages, option_order, parse_answer
from ._evaluate import (
    SHARED_PERSONA,
    EvalConfig,
    compute_metrics,
    eval_inputs,
    eval_personas,
    evaluate,
    item_metric_values,
    persona_hits,
    plan,
    rank_of,
)
from ._iwmap import AXIS_TITLES, ZONES, MapCountry, published_positions
from ._iwplace import ellipse
from ._metrics import (
    bootstrap_ci,
    js_distance,
    js_similarity,
    kl_divergence,
    majority_match,
    wasserstein_ordinal,
)
from ._opinionqa import (
    OpinionQuestion,
    OpinionSurvey,
    SkippedEntry,
    load_global_opinions,
    load_opinion_questions,
    load_opinion_survey,
)
from ._personas import Persona, personas_from_marginals, personas_from_survey
from ._questionnaire import Item, Questionnaire, bundled_with_sets, default_questionnaire, load_questionnaire
from ._reference import (
    CountryReference,
    Distribution,
    Marginal,
    ReferenceTable,
    aggregate,
    distributions,
    load_reference,
    marginals,
    reference_from_survey,
    survey_reference,
)
from ._release import load_value_labels, open_release
from ._result import METRICS, EvalResult, MetricRow, ModelShift, compare_models, format_shifts, format_table
from ._survey import DEMOGRAPHIC_FIELDS, Respondent, Survey, iter_respondents, load_survey, problem_note

__all__ = [
    "METRICS", "DEMOGRAPHIC_FIELDS", "PERSONA_STYLES", "STYLES",
    "Answer", "CountryReference", "Distribution", "EvalConfig", "EvalResult", "Item", "Marginal", "MetricRow",
    "ModelShift", "OpinionQuestion", "OpinionSurvey", "Persona", "Questionnaire", "ReferenceTable", "Respondent",
    "SkippedEntry", "Survey",
    "aggregate", "ask", "bootstrap_ci", "build_messages", "compare_models", "compute_metrics",
    "bundled_with_sets", "country_name", "default_questionnaire", "distributions", "evaluate", "format_shifts",
    "format_table",
    "iter_respondents", "js_distance", "js_similarity", "kl_divergence", "load_global_opinions",
    "load_opinion_questions", "load_opinion_survey", "load_value_labels", "open_release",
    "load_questionnaire", "load_reference", "load_survey", "majority_match", "marginals", "option_order",
    "parse_answer", "personas_from_marginals", "personas_from_survey", "rank_of", "reference_from_survey",
    "region_name", "resolve_country", "survey_reference", "wasserstein_ordinal",
    "SHARED_PERSONA", "answer_seed", "eval_inputs", "eval_personas", "item_metric_values", "persona_hits", "plan",
    "AXIS_TITLES", "ZONES", "MapCountry", "ellipse", "problem_note", "published_positions",
]  # fmt: skip
