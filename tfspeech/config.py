"""Frozen-dataclass configs: exact JSON round trip, typed overrides, readable diffs.

Every model config and the training config are small frozen dataclasses whose
fields hold only JSON-friendly values: `bool`, `int`, `float`, `str`, `None`,
`typing.Literal[...]`, `Optional[...]`, tuples of those (fixed or `...` length,
nested), `dict[str, ...]` and nested config dataclasses. With that restriction
`from_dict(cls, to_dict(c)) == c` holds exactly (Python's JSON writes floats
with `repr`, which round-trips every float64).

A field marked `safe` (see `safe_field`) may change when a run is resumed, but
only when the caller names it explicitly; every other field is fixed for the
life of a run (see `tfspeech.training.config.resolve_run_config`).

Example:

  @dataclasses.dataclass(frozen=True)
  class MyConfig:
    channels: int = 64
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    loss_weight: float = safe_field(45.0)

  cfg = apply_overrides(MyConfig(), parse_overrides("channels=32,upsample_rates=(4,4)"))
"""

import ast
import dataclasses
import difflib
import json
import types
import typing
from typing import Any, Mapping

_SAFE_KEY = "safe"


def safe_field(default=dataclasses.MISSING, **kwargs):
  """A dataclass field that may be overridden on resume (with explicit consent).

  Use for settings that change neither the shape of any variable nor the
  meaning of a stored checkpoint: learning rate, step budget, logging cadence.
  """
  metadata = dict(kwargs.pop("metadata", None) or {})
  metadata[_SAFE_KEY] = True
  return dataclasses.field(default=default, metadata=metadata, **kwargs)


def is_safe(field: dataclasses.Field) -> bool:
  return bool(field.metadata.get(_SAFE_KEY, False))


class ConfigError(ValueError):
  """A config value, override or stored config is invalid."""


# --------------------------------------------------------------------------- #
# Serialization.


def to_dict(config) -> dict:
  """Converts a config dataclass to plain JSON-compatible containers."""
  if not dataclasses.is_dataclass(config) or isinstance(config, type):
    raise ConfigError(f"to_dict expects a dataclass instance, got {type(config).__name__}")
  return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _to_plain(value):
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return to_dict(value)
  if isinstance(value, (tuple, list)):
    return [_to_plain(v) for v in value]
  if isinstance(value, Mapping):
    return {str(k): _to_plain(v) for k, v in value.items()}
  return value


def from_dict(cls, data: Mapping, *, path: str = "", allow_missing: bool = True):
  """Builds config dataclass `cls` from `to_dict` output, checking every type.

  Args:
    cls: the dataclass type.
    data: mapping of field name to plain value.
    path: dotted prefix used in error messages.
    allow_missing: fields absent from `data` take their defaults (a config
      written before a field existed still loads); unknown keys always fail.

  Raises:
    ConfigError: naming the offending field and what was expected.
  """
  if not isinstance(data, Mapping):
    raise ConfigError(f"{path or cls.__name__}: expected an object, got {data!r}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(data) - set(fields))
  if unknown:
    raise ConfigError(f"{path or cls.__name__}: unknown field(s) {unknown}; "
                      f"valid fields: {sorted(fields)}")
  kwargs = {}
  for name, f in fields.items():
    sub = f"{path}.{name}" if path else name
    if name in data:
      kwargs[name] = coerce(hints[name], data[name], sub)
    elif not allow_missing or (f.default is dataclasses.MISSING
                               and f.default_factory is dataclasses.MISSING):
      raise ConfigError(f"{sub}: missing")
  try:
    return cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{path or cls.__name__}: {e}") from e


def to_json(config) -> str:
  return json.dumps(to_dict(config), indent=2, sort_keys=False) + "\n"


def from_json(cls, text: str, *, path: str = ""):
  return from_dict(cls, json.loads(text), path=path)


def coerce(tp, value, path: str):
  """Checks `value` against type `tp`, converting lists to tuples etc."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if tp is Any:
    return value
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for option in args:
      if option is type(None):
        continue
      try:
        return coerce(option, value, path)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(f"{path}: {value!r} matches none of {_type_name(tp)}")
  if origin is typing.Literal:
    if value not in args or type(value) is not type(args[args.index(value)]):
      raise ConfigError(f"{path}: {value!r} is not one of {list(args)}")
    return value
  if origin in (tuple, typing.Tuple):
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{path}: expected a sequence ({_type_name(tp)}), got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if args and len(args) != len(value):
      raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
    if not args:
      return tuple(value)
    return tuple(coerce(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(args, value)))
  if origin in (dict, typing.Dict, Mapping):
    if not isinstance(value, Mapping):
      raise ConfigError(f"{path}: expected an object, got {value!r}")
    value_type = args[1] if args else Any
    return {str(k): coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
  if dataclasses.is_dataclass(tp):
    if isinstance(value, tp):
      return value
    return from_dict(tp, value, path=path)
  if tp is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"{path}: expected true/false, got {value!r}")
    return value
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      if isinstance(value, float) and value.is_integer():
        return int(value)
      raise ConfigError(f"{path}: expected an integer, got {value!r}")
    return value
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"{path}: expected a number, got {value!r}")
    return float(value)
  if tp is str:
    if not isinstance(value, str):
      raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value
  if tp is type(None):
    if value is not None:
      raise ConfigError(f"{path}: expected null, got {value!r}")
    return None
  raise ConfigError(f"{path}: unsupported config field type {tp!r}")


def _type_name(tp) -> str:
  return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# --------------------------------------------------------------------------- #
# Diffs.


@dataclasses.dataclass(frozen=True)
class Change:
  """One field that differs between two configs.

  Attributes:
    path: dotted field path, e.g. `train.learning_rate`.
    old: the stored value (plain JSON form).
    new: the requested value.
    safe: whether the field is marked `safe`.
  """
  path: str
  old: Any
  new: Any
  safe: bool

  def __str__(self):
    note = "" if self.safe else "  [fixed for the life of a run]"
    return f"  {self.path}: {_show(self.old)} → {_show(self.new)}{note}"


def _show(value) -> str:
  return json.dumps(value) if not isinstance(value, float) else repr(value)


def diff(old, new, *, prefix: str = "") -> list[Change]:
  """Lists the leaf fields that differ between two configs of the same class.

  Fields declared with `compare=False` are ignored. A nested dataclass field
  inherits `safe` from its parent field (a safe parent makes every leaf safe).
  """
  if type(old) is not type(new):
    raise ConfigError(f"cannot diff {type(old).__name__} against {type(new).__name__}")
  changes = []
  for f in dataclasses.fields(old):
    if not f.compare:
      continue
    a, b = getattr(old, f.name), getattr(new, f.name)
    path = f"{prefix}{f.name}"
    if dataclasses.is_dataclass(a) and type(a) is type(b):
      sub = diff(a, b, prefix=path + ".")
      if is_safe(f):
        sub = [dataclasses.replace(c, safe=True) for c in sub]
      changes.extend(sub)
    elif a != b or type(a) is not type(b):
      changes.append(Change(path, _to_plain(a), _to_plain(b), is_safe(f)))
  return changes


def format_diff(changes) -> str:
  return "\n".join(str(c) for c in changes)


# --------------------------------------------------------------------------- #
# Overrides: "key=value,key2=(1,2)" → typed field values.


def parse_overrides(text: str) -> dict[str, str]:
  """Splits `key=value,key2=value2` into a dict of raw strings.

  Commas inside brackets or quotes belong to the value, so tuples can be given
  as `upsample_rates=(8,8,2,2)`. Empty text gives an empty dict.

  Raises:
    ConfigError: an item has no `=` or a key is given twice.
  """
  items, depth, quote, current = [], 0, None, []
  for ch in text or "":
    if quote:
      quote = None if ch == quote else quote
    elif ch in "\"'":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      items.append("".join(current))
      current = []
      continue
    current.append(ch)
  items.append("".join(current))
  result = {}
  for item in items:
    item = item.strip()
    if not item:
      continue
    if "=" not in item:
      raise ConfigError(f"override {item!r} is not of the form key=value")
    key, value = item.split("=", 1)
    key = key.strip()
    if key in result:
      raise ConfigError(f"override key {key!r} given twice")
    result[key] = value.strip()
  return result


def parse_value(tp, text: str, path: str):
  """Parses the command-line text of one override into field type `tp`."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  stripped = text.strip()
  if origin in (typing.Union, types.UnionType) and type(None) in args:
    if stripped.lower() in ("none", "null"):
      return None
    inner = [a for a in args if a is not type(None)]
    return parse_value(inner[0] if len(inner) == 1 else typing.Union[tuple(inner)], text, path)
  if tp is bool:
    lowered = stripped.lower()
    if lowered in ("true", "1", "yes", "on"):
      return True
    if lowered in ("false", "0", "no", "off"):
      return False
    raise ConfigError(f"{path}: expected true/false, got {text!r}")
  if tp is str:
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
      return stripped[1:-1]
    return stripped
  if tp is int:
    try:
      return int(stripped)
    except ValueError:
      try:
        as_float = float(stripped)
      except ValueError:
        as_float = None
      if as_float is not None and as_float.is_integer():
        return int(as_float)
      raise ConfigError(f"{path}: expected an integer, got {text!r}") from None
  if tp is float:
    try:
      return float(stripped)
    except ValueError:
      raise ConfigError(f"{path}: expected a number, got {text!r}") from None
  if origin is typing.Literal:
    for choice in args:
      if str(choice) == stripped:
        return choice
    raise ConfigError(f"{path}: {text!r} is not one of {list(args)}")
  try:
    literal = ast.literal_eval(stripped)
  except (ValueError, SyntaxError):
    raise ConfigError(f"{path}: cannot parse {text!r} as {_type_name(tp)}") from None
  return coerce(tp, literal, path)


def field_paths(cls, prefix: str = "") -> dict[str, tuple[Any, bool]]:
  """Maps every leaf field path of config class `cls` to (type, safe)."""
  hints = typing.get_type_hints(cls)
  paths = {}
  for f in dataclasses.fields(cls):
    if not f.init:
      continue
    tp = hints[f.name]
    path = prefix + f.name
    if dataclasses.is_dataclass(tp):
      for sub, (sub_tp, sub_safe) in field_paths(tp, path + ".").items():
        paths[sub] = (sub_tp, sub_safe or is_safe(f))
    else:
      paths[path] = (tp, is_safe(f))
  return paths


def replace_path(config, path: str, value):
  """Returns a copy of `config` with the (dotted) field `path` set to `value`."""
  head, _, rest = path.partition(".")
  names = {f.name for f in dataclasses.fields(config)}
  if head not in names:
    raise ConfigError(f"{type(config).__name__} has no field {head!r}")
  if rest:
    return dataclasses.replace(config, **{head: replace_path(getattr(config, head), rest, value)})
  try:
    return dataclasses.replace(config, **{head: value})
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{path}={value!r}: {e}") from e


def apply_overrides(config, overrides: Mapping[str, Any], *, path_prefix: str = ""):
  """Returns `config` with dotted-path overrides applied.

  Args:
    config: a config dataclass instance.
    overrides: field path → value; a `str` value is parsed according to the
      field's type (so command-line text works), anything else is type-checked.
    path_prefix: prefix used in error messages.

  Raises:
    ConfigError: an unknown field (the message lists valid ones and the closest
      match) or a value of the wrong type.
  """
  paths = field_paths(type(config))
  for key, value in overrides.items():
    if key not in paths:
      raise ConfigError(unknown_field_message(path_prefix + key,
                                              [path_prefix + p for p in paths]))
    tp, _ = paths[key]
    full = path_prefix + key
    typed = parse_value(tp, value, full) if isinstance(value, str) and tp is not str \
        else coerce(tp, value, full)
    config = replace_path(config, key, typed)
  return config


def unknown_field_message(key: str, valid) -> str:
  valid = sorted(valid)
  close = difflib.get_close_matches(key, valid, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  return f"unknown config field {key!r}.{hint} Valid fields: {', '.join(valid)}"
