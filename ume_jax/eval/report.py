"""Writes results: ``results.json``, ``results.md`` and ``robustness.png``."""
import json
import os

import matplotlib

matplotlib.use("Agg")  # headless: a file, never a window
import matplotlib.pyplot as plt  # noqa: E402



def _rate_scenarios(results: dict) -> list[dict]:
  """The ``missing_rate`` scenarios of ``results`` (their structure)."""
  return [s for s in results["scenarios"] if s["rate_modality"] is not None]


def markdown_table(results: dict) -> str:
  metric = results["primary_metric"]
  methods = results["methods"]
  rates = _rate_scenarios(results)
  fixed = [s["name"] for s in results["scenarios"] if s not in rates]
  labels = {s["name"]: f"{s['rate_modality']}:{s['rate']:g}" for s in rates}
  lines = [f"# {results['dataset']}: test {metric} (%)", ""]
  for title, cols in (("Missing modalities", fixed),
                      ("Missing rate (modality:rate)",
                       [s["name"] for s in rates])):
    if not cols:
      continue
    short = [labels.get(c, c) for c in cols]
    lines += [f"## {title}", "", "| method | " + " | ".join(short) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for m, row in methods.items():
      lines.append(f"| {m} | " + " | ".join(
          f"{100 * row[c][metric]:.2f}" for c in cols) + " |")
    if title.startswith("Missing modalities"):
      lines.append("| *ceiling* | " + " | ".join(
          f"{100 * results['ceiling'][c]:.2f}" if c in results["ceiling"]
          else "" for c in cols) + " |")
    lines.append("")
  lines.append(f"ume_mma = **{results['ume_mma_choice']['chosen']}**: "
               f"{results['ume_mma_choice']['reason']}.")
  return "\n".join(lines) + "\n"


def robustness_plot(results: dict, path: str):
  """Score vs test-time missing rate, one panel per modality, one line per
  method; rate 0 is the ``full`` scenario."""
  metric = results["primary_metric"]
  methods = results["methods"]
  curves: dict[str, dict[str, list]] = {}
  for s in _rate_scenarios(results):
    curves.setdefault(s["rate_modality"], {}).setdefault("rates", []).append(
        (s["rate"], s["name"]))
  if not curves:
    return
  fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4),
                           squeeze=False)
  for ax, (modality, c) in zip(axes[0], curves.items()):
    points = [(0.0, "full")] + sorted(c["rates"])
    for method, row in methods.items():
      ax.plot([r for r, _ in points], [100 * row[s][metric] for _, s in points],
              marker="o", label=method,
              linestyle="--" if method == "ume_mma" else "-")
    ax.set_title(f"{modality} missing")
    ax.set_xlabel(f"fraction of test examples without {modality}")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=8)
  fig.suptitle(f"{results['dataset']}: robustness to missing modalities")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_results(results: dict, workdir: str) -> str:
  """Writes the three files atomically enough (temp + rename) and returns the
  markdown table."""
  os.makedirs(workdir, exist_ok=True)
  table = markdown_table(results)
  for name, text in (("results.json", json.dumps(results, indent=2)),
                     ("results.md", table)):
    tmp = os.path.join(workdir, name + ".tmp")
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, os.path.join(workdir, name))
  robustness_plot(results, os.path.join(workdir, "robustness.png"))
  return table
