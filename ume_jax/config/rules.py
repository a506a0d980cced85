"""What a config value must be, declared next to the code that reads it.

Each consumer of a config section declares a *schema*: a dict from key to a
rule (or to a nested schema for a sub-section, or ``None`` for a section
another module checks). ``checks.py`` gathers them into one schema for the
whole config and checks every key and value in one pass, before any work.
A rule returns ``None`` for a good value, else what it expected, in words.

This module imports nothing from the project, so any module can declare its
keys without an import cycle.
"""
import numbers
from typing import Any, Callable, Mapping

Rule = Callable[[Any], str | None]
Schema = Mapping[str, "Rule | PerKey | Schema | None"]


def one_of(*choices) -> Rule:
  def rule(value):
    return None if value in choices else f"one of {list(choices)}"
  return rule


def _bounds(low, high, low_open, high_open) -> str:
  left = "(" if low_open else "["
  right = ")" if high_open else "]"
  lo = "-inf" if low is None else f"{low:g}"
  hi = "inf" if high is None else f"{high:g}"
  return f"{left}{lo}, {hi}{right}"


def number(low=None, high=None, *, low_open=False, high_open=False,
           integer=False) -> Rule:
  """A number in the given bounds (``integer``: a whole number)."""
  kind = "an integer" if integer else "a number"
  what = kind if low is None and high is None else (
      f"{kind} in {_bounds(low, high, low_open, high_open)}")

  def rule(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      return what
    if integer and int(value) != value:
      return what
    if low is not None and (value < low or (low_open and value == low)):
      return what
    if high is not None and (value > high or (high_open and value == high)):
      return what
    return None
  return rule


def integer(low=None, high=None) -> Rule:
  return number(low, high, integer=True)


def boolean(value) -> str | None:
  return None if isinstance(value, bool) else "True or False"


def text(value) -> str | None:
  return None if isinstance(value, str) else "a string"


def anything(value) -> str | None:
  del value
  return None


def each(rule: Rule) -> Rule:
  """A sequence whose every element satisfies ``rule``."""
  def check(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
      return "a sequence"
    for v in value:
      bad = rule(v)
      if bad:
        return f"a sequence of {bad} (found {v!r})"
    return None
  return check


class PerKey:
  """A section of free keys (one per modality, say) whose values all satisfy
  ``rule``; errors name the key (``mma.drop_probs.audio``)."""

  def __init__(self, rule: Rule):
    self.rule = rule
