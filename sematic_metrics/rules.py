"""Rules shared by the SDK, the service and the SQL in schema/, each written once.

Standard library only: the SDK imports this module inside the user's pipeline.
The schema files get the rules through markers the loader fills in
(``{{well_known_labels}}``, ``{{min_time_us}}`` ...; see ``SQL_CONSTANTS`` and
``service/sqlfiles.py``), so SQL and Python cannot disagree.
"""

from __future__ import annotations

# Well-known labels are stored as columns of metric_points: label key -> column.
# Every other label goes to the ``labels`` map.
WELL_KNOWN_LABELS: dict[str, str] = {
    "run_id": "run_id",
    "root_id": "root_id",
    "function_path": "function_path",
    "root_function_path": "root_function_path",
    "__scope__": "scope",
    "user_id": "user_id",
}
# The label filter key that selects root or nested runs, not a stored label.
ROOT_FILTER = "root"

# Time: the API speaks epoch seconds, the store epoch microseconds.
US_PER_S = 1_000_000
MIN_TIME = -2208988800.0  # 1900-01-01, DateTime64's lower bound
MAX_TIME = 10413792000.0  # 2300-01-01, exclusive upper bound
MIN_TIME_US = int(MIN_TIME) * US_PER_S
MAX_TIME_US = int(MAX_TIME) * US_PER_S
# A read without from_time starts at the Unix epoch, as Sematic's API does.
DEFAULT_FROM_TIME = 0.0
DEFAULT_FROM_US = int(DEFAULT_FROM_TIME) * US_PER_S

# Limits on what a client may send.
MAX_NAME = 1024  # a metric name
MAX_STEP = 2**63 - 1  # steps are stored as Int64
MAX_TEXT = 8192  # free text: a label value, a run's display name
MAX_LABEL_KEY = 256
MAX_LABEL_VALUE = MAX_TEXT
MAX_LABELS = 128

# Run records: Sematic's states, in lifecycle order, and the limits of ids and paths.
RUN_STATES = ("CREATED", "SCHEDULED", "RAN", "RETRYING", "RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED")
TERMINAL_STATES = ("RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED")
MAX_ID = 256  # a run id
MAX_PATH = 1024  # a function path

# Metric types as stored (metric_points.metric_type is an Enum8 of these codes).
COUNT = 0
GAUGE = 1
TYPE_NAMES: dict[int, str] = {COUNT: "COUNT", GAUGE: "GAUGE"}
TYPE_CODES: dict[str, int] = {name: code for code, name in TYPE_NAMES.items()}


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The literal SQL text each ``{{marker}}`` of a schema file stands for.
SQL_CONSTANTS: dict[str, str] = {
    "well_known_labels": "(" + ", ".join(_sql_string(k) for k in WELL_KNOWN_LABELS) + ")",
    "min_time_us": str(MIN_TIME_US),
    "max_time_us": str(MAX_TIME_US),
    "metric_type_enum": "Enum8(" + ", ".join(f"{_sql_string(n)} = {c}" for c, n in TYPE_NAMES.items()) + ")",
}
