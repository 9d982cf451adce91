"""One-off: build the bundled demo folder resources/sample/ from data/plates_real.

Copies 200 real crops (an even spread, skipping any listed in data/splits/heldout.txt),
keeps their names, plants 8 wrong labels and one corrupt file, and writes
resources/sample/README.md listing them. Run from the repository root:

    python scripts/make_sample.py
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.plates import label_error, parse_name  # noqa: E402

SRC = ROOT / "data" / "plates_real"
DST = ROOT / "resources" / "sample"
HELDOUT = ROOT / "data" / "splits" / "heldout.txt"
N = 200

# (index into the chosen list, how to corrupt the label, description)
PLANTS = [
    (5, lambda s: s[:6] + ("8" if s[6] != "8" else "3"), "last character changed"),
    (23, lambda s: ("浙" if s[0] != "浙" else "皖") + s[1:], "wrong province"),
    (41, lambda s: s[:1] + ("B" if s[1] != "B" else "C") + s[2:], "wrong city letter"),
    (67, lambda s: s[:3] + s[4] + s[3] + s[5:], "two characters swapped"),
    (88, lambda s: s[:4] + ("D" if s[4] != "D" else "0") + s[5:], "a character read as D"),
    (112, lambda s: s[:5] + ("B" if s[5] != "B" else "8") + s[6:], "a character read as B"),
    (
        140,
        lambda s: s[:2] + s[2:].replace("1", "I", 1) if "1" in s[2:] else s[:2] + "I" + s[3:],
        "an 'I' (invalid label: plates use 1, never I)",
    ),
    (171, lambda s: s[:6], "a character missing (invalid label: 6 characters)"),
]


def main() -> int:
    heldout: set[str] = set()
    if HELDOUT.exists():
        heldout = {Path(line.strip()).name for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line.strip()}
    files = sorted(p for p in SRC.iterdir() if p.suffix.lower() == ".jpg" and p.name not in heldout)
    step = max(1, len(files) // N)
    chosen = files[::step][:N]
    if DST.exists():
        shutil.rmtree(DST)
    DST.mkdir(parents=True)
    planted = {i: (f, d) for i, f, d in PLANTS}
    rows = []
    for i, src in enumerate(chosen):
        name = src.name
        if i in planted:
            fn, desc = planted[i]
            p = parse_name(name)
            wrong = fn(p.label)
            name = f"{p.id}-{wrong}{src.suffix}"
            diffs = [f"{a}→{b} at {k + 1}" for k, (a, b) in enumerate(zip(p.label, wrong)) if a != b]
            if len(wrong) == len(p.label) and diffs:
                desc += f" ({', '.join(diffs)})"
            rows.append((name, p.label, desc, label_error(wrong) is not None))
        shutil.copy2(src, DST / name)
    rng = random.Random(5)
    corrupt = "0999-皖A12345.jpg"
    (DST / corrupt).write_bytes(bytes(rng.randrange(256) for _ in range(37)))
    lines = [
        "# Bundled sample folder",
        "",
        f"{len(chosen)} real licence-plate crops (94x24 px JPEG) plus one corrupt file, opened by",
        "`python main.py` when no folder is given. Labels are in the file names (`<id>-<PLATE>.jpg`).",
        "",
        "Source: the `data/test` folder of [sirius-ai/LPRNet_Pytorch](https://github.com/sirius-ai/LPRNet_Pytorch),",
        "Apache License 2.0 (via `data/plates_real/`, an even spread, none from `data/splits/heldout.txt`).",
        "Built by `scripts/make_sample.py`.",
        "",
        "## Planted errors",
        "",
        "These names were changed on purpose so the review app has something to find:",
        "",
        "| file | true label | what was planted |",
        "|---|---|---|",
    ]
    for name, true, desc, _invalid in rows:
        lines.append(f"| `{name}` | {true} | {desc} |")
    lines += [
        f"| `{corrupt}` | — | corrupt file: 37 random bytes, not an image (shows as unreadable) |",
        "",
        "The source labels were checked by eye only on a sample, so a few other names may be wrong too.",
        "",
    ]
    (DST / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {len(chosen) + 1} files to {DST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
