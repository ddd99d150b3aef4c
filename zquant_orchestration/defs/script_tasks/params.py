"""A task's typed parameters: checked at load, the asset's run config at launch, Pipes
extras in the script.

```yaml
params:
  top_n: {type: int, default: 20, description: How many stocks.}
  stocks: {type: ts_codes, default: ["600519.SH"]}
  since: {type: date, default: 2024-01-02}
```

Dagster checks the run config when a run is launched (UI launchpad, ``--config-json``,
GraphQL ``runConfigData``): a value of the wrong type, a ts_code not in the stock list or an
unknown name is refused before any run exists, with the field's path in the message.
Dagster's config has no date type, so a ``date`` is a string there; the step checks it
before the script starts and fails the run with one line naming the param. A run without
config (every scheduled run) gets the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

import dagster as dg

from zquant_orchestration.defs.shared.stock_codes import stock_code_enum

TYPES = ("int", "float", "str", "bool", "date", "ts_codes")
PARAM_FIELDS = {"type", "default", "description"}
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TS_CODE = re.compile(r"\d{6}\.(SH|SZ|BJ)")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    default: object  # int, float, str, bool, an ISO date string, or a tuple of ts_codes
    description: str = ""


def parse_params(raw, fail, known_codes: set[str] | None = None) -> tuple[ParamSpec, ...]:
    """The ``params:`` mapping of a task; ``fail(field, problem)`` builds the one-line error."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise fail("params", "expected a mapping of names to {type: ..., default: ...}")
    params = []
    for name, body in raw.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            raise fail("params", f"'{name}' is not a parameter name (ASCII letters, digits and _)")
        where = f"params: {name}"
        if not isinstance(body, dict):
            raise fail(where, "expected {type: ..., default: ...}")
        unknown = sorted(set(body) - PARAM_FIELDS)
        if unknown:
            raise fail(where, f"unknown field '{unknown[0]}'; a parameter has {', '.join(sorted(PARAM_FIELDS))}")
        kind = body.get("type")
        if kind not in TYPES:
            raise fail(where, f"type {kind!r} is not one of {', '.join(TYPES)}")
        if "default" not in body:
            raise fail(where, "needs a default (runs launched by its automation use it)")
        params.append(ParamSpec(name, kind, _default(kind, body["default"], partial(fail, where), known_codes),
                                str(body.get("description", ""))))
    return tuple(params)


def _default(kind: str, value, fail, known_codes: set[str] | None):
    wrong = fail(f"default {value!r} is not {'a' if kind != 'int' else 'an'} {kind}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
    elif kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
            raise wrong
        value = float(value) if kind == "float" else value
    elif kind == "str":
        if not isinstance(value, str):
            raise wrong
    elif kind == "date":
        if parse_date(value) is None:
            raise fail(f"default {value!r} is not a date; write it as YYYY-MM-DD")
        value = parse_date(value)
    else:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise fail(f"default {value!r} is not a list of ts_codes, e.g. ['600519.SH']")
        for code in value:
            if not TS_CODE.fullmatch(code) or (known_codes is not None and code not in known_codes):
                raise fail(f"default names '{code}', not a ts_code of the stock list")
        value = tuple(value)
    return value


def parse_date(value) -> str | None:
    """YYYY-MM-DD of a YAML date or an ISO string; None when it is neither."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat() if len(value) == 10 else None
        except ValueError:
            return None
    return None


def config_schema(params: tuple[ParamSpec, ...]) -> dict | None:
    """The asset's run config: one field per param, each with its default."""
    if not params:
        return None
    types = {"int": dg.Int, "float": dg.Float, "str": dg.String, "bool": dg.Bool, "date": dg.String,
             # The stock list as the definitions were built with it.
             "ts_codes": [dg.Enum.from_python_enum_direct_values(stock_code_enum())]}
    return {p.name: dg.Field(types[p.type], default_value=list(p.default) if p.type == "ts_codes" else p.default,
                             description=p.description or _describe(p))
            for p in params}


def _describe(param: ParamSpec) -> str:
    return {"date": "A date, YYYY-MM-DD.", "ts_codes": "ts_codes, e.g. ['600519.SH']."}.get(param.type, param.type)


def script_values(task: str, params: tuple[ParamSpec, ...], config: dict) -> dict:
    """The run's values as the script gets them (``pipes.extras``); a date that is not one
    fails the step before the script starts."""
    values = {}
    for param in params:
        value = config.get(param.name, param.default)
        if param.type == "date" and parse_date(value) is None:
            raise dg.Failure(f"task '{task}': params: {param.name}: {value!r} is not a date; launch again with "
                             "YYYY-MM-DD", allow_retries=False)
        values[param.name] = list(value) if param.type == "ts_codes" else value
    return values
