"""Writes results: ``results.json``, ``results.md`` and ``robustness.png``.

Everything here reads the results' structure (``results["scenarios"]``),
never scenario names. With several seeds, numbers are mean +- std (n) and the
plot shows 95% interval bands.
"""
import io
import json

import matplotlib

matplotlib.use("Agg")  # headless: a file, never a window
import matplotlib.pyplot as plt  # noqa: E402

from ume_jax.eval import statistics  # noqa: E402
from ume_jax.infra import paths  # noqa: E402

# The missing-aware-prompts papers' headline setting: 70% missing.
TABLE_RATE = 0.7


def _rate_scenarios(results: dict) -> list[dict]:
  """The ``missing_rate`` scenarios of ``results`` (their structure)."""
  return [s for s in results["scenarios"] if s["missing_type"] is not None]


def _n_seeds(results: dict) -> int:
  return len(results.get("seeds") or [0])


def _cell(results: dict, method: str, scenario: str, metric: str) -> str:
  if _n_seeds(results) == 1:
    return f"{100 * results['methods'][method][scenario][metric]:.2f}"
  a = results["aggregate"][method][scenario][metric]
  return f"{100 * a['mean']:.2f} ± {100 * a['std']:.2f}"


def _table(results, title, columns, labels, metric, with_ceiling):
  lines = [f"## {title}", "",
           "| method | " + " | ".join(labels[c] for c in columns) + " |",
           "|---" * (len(columns) + 1) + "|"]
  for m in results["methods"]:
    lines.append(f"| {m} | " + " | ".join(
        _cell(results, m, c, metric) for c in columns) + " |")
  if with_ceiling:
    lines.append("| *ceiling* | " + " | ".join(
        f"{100 * results['ceiling'][c]:.2f}" if c in results["ceiling"]
        else "" for c in columns) + " |")
  return lines + [""]


def _map_layout(results: dict, metric: str) -> list[str]:
  """The missing-aware-prompts papers' table: one row per test missing type
  at eta = 70%, with the share of training and test examples that have each
  modality, then every method's score."""
  rows = [s for s in _rate_scenarios(results)
          if abs(s["rate"] - TABLE_RATE) < 1e-9]
  protocol = results.get("protocol") or {}
  train = protocol.get("train_present_fraction")
  if not rows or not train:
    return []
  mods = list(train)
  methods = list(results["methods"])
  head = (f"| missing rate | train ({', '.join(mods)}) | test"
          f" ({', '.join(mods)}) | " + " | ".join(methods) + " |")
  lines = [f"## Missing-aware-prompts layout (η = {TABLE_RATE:.0%}, test"
           " type per row)", "", head, "|---" * (3 + len(methods)) + "|"]
  for s in rows:
    test = s["test_present_fraction"]
    lines.append(
        f"| {s['missing_type']} {s['rate']:.0%} | "
        + " / ".join(f"{train[m]:.0%}" for m in mods) + " | "
        + " / ".join(f"{test[m]:.0%}" for m in mods) + " | "
        + " | ".join(_cell(results, m, s["name"], metric) for m in methods)
        + " |")
  substitute = protocol.get("substitute")
  return lines + ["", f"Substitute for an absent modality: `{substitute}`;"
                  f" training missingness: {protocol.get('train_missing')}.",
                  ""]


def _claims(results: dict) -> list[str]:
  if not results.get("claims"):
    return []
  n = _n_seeds(results)
  lines = ["## The paper's claims", "",
           f"Paired differences of the primary metric over {n} seed(s);"
           " *holds* when the whole 95% interval is on the claimed side,"
           " *fails* when it is entirely on the other, *undecided* otherwise."
           + (" One seed: each verdict is a single-run observation." if n == 1
              else ""), "",
           "| claim | verdict | scenario: mean difference [95% interval] |",
           "|---|---|---|"]
  for c in results["claims"]:
    parts = []
    for s, d in c["per_scenario"].items():
      ci = (f" [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]"
            if d["ci95"] else "")
      parts.append(f"{s}: {100 * d['mean']:+.2f}{ci} ({d['verdict']})")
    lines.append(f"| {c['claim']} | **{c['verdict']}** | "
                 + "; ".join(parts) + " |")
  return lines + [""]


# The ablation ladder: each step adds one ingredient of UME-MMA (joint
# training -> + augmentation -> pre-trained start -> both -> the ensemble ->
# the choice), then the field's baselines (umt, then the UME/UMT choice by
# Du et al.'s rule).
LADDER = ("late_fusion", "moddrop", "late_fusion_pretrained", "mma", "ume",
          "ume_mma", "umt", "ume_umt", "prompts")
_WORDS = {"holds": "wins", "fails": "loses", "undecided": "ties"}


def _interval(summary: dict, scale: float = 100.0) -> str:
  mean = f"{scale * summary['mean']:+.2f}"
  if not summary.get("ci95"):
    return mean
  low, high = summary["ci95"]
  return f"{mean} [{scale * low:+.2f}, {scale * high:+.2f}]"


def _ablation(results: dict, columns: list[str], labels: dict,
              metric: str) -> list[str]:
  """One row per ladder method run: its scores, and ``ume_mma`` minus it
  (paired by seed) under ``full`` and each column, with the verdict."""
  rows = [m for m in LADDER if m in results["methods"]]
  diffs = results.get("paired_differences") or {}
  if len(rows) < 2:
    return []
  lines = ["## Ablation ladder (each row adds one ingredient)", "",
           "| method | " + " | ".join(labels[c] for c in columns)
           + " | ume_mma − method: " + ", ".join(labels[c] for c in columns)
           + " |", "|---" * (len(columns) + 2) + "|"]
  for m in rows:
    vs = ""
    if m in diffs:
      vs = "; ".join(f"{_interval(diffs[m][c])} {_word(diffs[m][c])}"
                     for c in columns)
    lines.append(f"| {m} | " + " | ".join(
        _cell(results, m, c, metric) for c in columns) + f" | {vs} |")
  return lines + ["", "*wins* / *loses*: the paired 95% interval of the"
                  " difference is above / below 0, *ties* otherwise; with"
                  " one seed, *ahead* / *behind* / *equal* say only the"
                  " point's side.", ""]


def _word(diff: dict) -> str:
  """UME-MMA against one baseline, from their paired difference."""
  if diff["ci95"] is None:
    return ("ahead" if diff["mean"] > 0 else "behind" if diff["mean"] < 0
            else "equal")
  return _WORDS[statistics.verdict(diff)]


def _robustness(results: dict) -> list[str]:
  """MultiBench's relative and effective robustness per missing type."""
  table = results.get("robustness")
  if not table:
    return []
  types = list(next(iter(table.values())))
  agg = results.get("robustness_aggregate")
  many = _n_seeds(results) > 1 and agg

  def cell(m, t, k):
    if table[m][t][k] is None:
      return ""
    if many:
      return _interval(agg[m][t][k], 1.0).lstrip("+")
    return f"{table[m][t][k]:.4f}"

  head = [f"{t} rel." for t in types] + [f"{t} eff." for t in types]
  lines = ["## Robustness over the missing-rate sweep (MultiBench)", "",
           "Relative: area under the test curve over η in [0, 1]; effective:"
           " sum over the sweep of the score minus `late_fusion`'s shifted"
           " to the method's own `full` score (raw, not min-max normalised).",
           "", "| method | " + " | ".join(head) + " |",
           "|---" * (len(head) + 1) + "|"]
  for m in table:
    lines.append(f"| {m} | " + " | ".join(
        [cell(m, t, "relative") for t in types]
        + [cell(m, t, "effective") for t in types]) + " |")
  return lines + [""]


def markdown_table(results: dict) -> str:
  metric = results["primary_metric"]
  rates = _rate_scenarios(results)
  fixed = [s["name"] for s in results["scenarios"] if s not in rates]
  labels = {s["name"]: s["name"] for s in results["scenarios"]}
  labels.update({s["name"]: f"{s['missing_type']}:{s['rate']:g}"
                 for s in rates})
  n = _n_seeds(results)
  unit = f"%, mean ± std over {n} seeds" if n > 1 else "%"
  lines = [f"# {results['dataset']}: test {metric} ({unit})", ""]
  lines += _table(results, "Missing modalities", fixed, labels, metric, True)
  if rates:
    lines += _table(results, "Missing rate (type:rate)",
                    [s["name"] for s in rates], labels, metric, False)
  lines += _ablation(results, fixed, labels, metric)
  lines += _robustness(results)
  lines += _map_layout(results, metric)
  if "ece" in next(iter(results["methods"].values()))[fixed[0]]:
    lines += _table(results, "Expected calibration error (test, %, 15 bins;"
                    " lower is better)", fixed, labels, "ece", False)
  lines += _claims(results)
  lines.append(f"ume_mma = **{results['ume_mma_choice']['chosen']}**: "
               f"{results['ume_mma_choice']['reason']}.")
  umt = results.get("ume_umt_choice")
  if umt:   # its own paragraph
    lines += ["", f"ume_umt = **{umt['chosen']}** (Du et al.'s rule as we"
              " read it: ume if it beats late_fusion on validation, else"
              f" umt): {umt['reason']}."]
  lines += _choices(results)
  return "\n".join(lines) + "\n"


def _choices(results: dict) -> list[str]:
  """The other choices validation made: temperatures, best_per_pattern."""
  lines = []
  temps = results.get("temperatures")
  if temps and "per_seed" not in temps:
    lines.append("Temperatures fitted on validation (NLL), dividing each"
                 " uni-modal model's logits in `ume` and in the heads"
                 " fusion starts from: " + ", ".join(
                     f"{m} {t:.3g}" for m, t in temps.items()) + ".")
  choice = results.get("best_per_pattern_choice")
  if choice and "per_seed" not in choice:
    lines.append("best_per_pattern chose, per presence pattern on"
                 " validation: " + ", ".join(
                     f"{s} → {c['chosen']}" for s, c in choice.items()) + ".")
  return ([""] + lines) if lines else []


_LINES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "x", "P")


def robustness_plot(results: dict, path: str):
  """Score vs test-time missing rate, one panel per missing type, one line
  (own colour, marker and style) per method; rate 0 is ``full``. The
  ceiling with the type's modality fully absent is drawn; with several seeds,
  95% interval bands. The y-range fits the multi-modal methods and the
  ceiling, where the differences are; uni-modal curves falling towards
  chance leave the panel."""
  metric = results["primary_metric"]
  curves: dict[str, list] = {}
  for s in _rate_scenarios(results):
    curves.setdefault(s["missing_type"], []).append((s["rate"], s["name"]))
  if not curves:
    return
  aggregate = results.get("aggregate") if _n_seeds(results) > 1 else None
  fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.2),
                           squeeze=False)
  for ax, (kind, points) in zip(axes[0], curves.items()):
    points = [(0.0, "full")] + sorted(points)
    xs = [r for r, _ in points]
    low = []
    for i, method in enumerate(results["methods"]):
      ys = [100 * results["methods"][method][s][metric] for _, s in points]
      if not method.startswith("unimodal:"):
        low.append(min(ys))
      line, = ax.plot(xs, ys, linestyle=_LINES[i % len(_LINES)],
                      marker=_MARKERS[i % len(_MARKERS)], markersize=4,
                      label=method, linewidth=2 if method == "ume_mma" else 1)
      if aggregate:
        bands = [aggregate[method][s][metric]["ci95"] for _, s in points]
        ax.fill_between(xs, [100 * b[0] for b in bands],
                        [100 * b[1] for b in bands], alpha=0.15,
                        color=line.get_color())
    ceiling = results["ceiling"].get(f"missing:{kind}")
    if ceiling is not None:
      ax.axhline(100 * ceiling, color="black", linewidth=0.8,
                 linestyle=(0, (2, 2)), label=f"ceiling ({kind} absent)")
      low.append(100 * ceiling)
    top = max(max(100 * results["methods"][m][s][metric] for _, s in points)
              for m in results["methods"])
    bottom = min(low)
    ax.set_ylim(max(0.0, bottom - 0.1 * (top - bottom) - 0.5),
                min(100.0, top + 0.05 * (top - bottom) + 0.5))
    ax.set_title(f"missing type: {kind}")
    ax.set_xlabel("fraction of test examples missing (η)")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7)
  fig.suptitle(f"{results['dataset']}: robustness to missing modalities")
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=100)
  plt.close(fig)
  paths.write_bytes(path, png.getvalue())


def write_results(results: dict, workdir: str) -> str:
  """Writes the three files, each whole or not at all (``infra/paths.py``),
  and returns the markdown table."""
  table = markdown_table(results)
  for name, text in (("results.json", json.dumps(results, indent=2)),
                     ("results.md", table)):
    paths.write_text(paths.join(workdir, name), text)
  robustness_plot(results, paths.join(workdir, "robustness.png"))
  return table
